"""Validate a torch device name up front, so a bad one is a typed error naming the valid choices."""

from __future__ import annotations

from typing import Any

from .errors import InvalidOptionError

__all__ = ["resolve_device"]


def resolve_device(device: Any) -> Any:
    """The ``torch.device`` for ``device`` ("cpu", "cuda", "cuda:N"), checked against this machine."""
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidOptionError(
            f"unknown device {device!r}; use 'cpu' or 'cuda' (or 'cuda:N')", option="device"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidOptionError(
                f"device {str(device)!r} asked for, but this machine has no CUDA GPU (or torch was built without "
                "CUDA); use 'cpu'",
                option="device",
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InvalidOptionError(
                f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)", option="device"
            )
    elif resolved.type == "cpu" and resolved.index not in (None, 0):
        raise InvalidOptionError(
            f"device {str(device)!r}: there is one CPU device; use 'cpu' (torch uses every core)", option="device"
        )
    elif resolved.type != "cpu":
        raise InvalidOptionError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'", option="device")
    return resolved
