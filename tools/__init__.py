"""Scripts that generate the documentation's figures and pages (not part of the emolens package)."""
