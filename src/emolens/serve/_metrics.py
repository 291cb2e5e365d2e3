"""``/metrics``: the server's Prometheus metrics (the ``prometheus-client`` package, in ``emolens[serve]``).

Each app keeps its metrics in a registry of its own, so several apps in one process (tests) do not
mix. With ``emolens serve --workers N`` the workers share a folder (``PROMETHEUS_MULTIPROC_DIR``,
set by ``serve()``) and any worker answers a scrape with the sum over all of them.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MULTIPROC_ENV", "Metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets (seconds): a face takes milliseconds, a batch of 32 large photos seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Requests by route and status, latency, faces analysed, requests in flight and shed, model load state."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        registry = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "emolens_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=registry
        )
        self.latency = Histogram(
            "emolens_http_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.images = Counter("emolens_images_analysed", "Images analysed", registry=registry)
        self.faces = Counter("emolens_faces_analysed", "Faces classified (fallback faces included)", registry=registry)
        self.passes = Counter(
            "emolens_classify_passes",
            "Forward passes of the emotion model (fewer than requests when micro-batching joins them)",
            registry=registry,
        )
        self.passed_requests = Counter(
            "emolens_classify_pass_requests",
            "Requests served by those passes (divided by the passes: requests per forward pass)",
            registry=registry,
        )
        self.in_flight = Gauge(
            "emolens_requests_in_flight",
            "Analysis requests being read or analysed",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.shed_total = Counter(
            "emolens_requests_shed",
            "Requests answered 503 without an analysis: busy, timeout, draining",
            ["reason"],
            registry=registry,
        )
        self.loaded = Gauge(
            "emolens_model_loaded",
            "1 for each model loaded in a server process",
            ["model", "model_id"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.ready = Gauge(
            "emolens_ready",
            "1 once the default model is loaded and warmed up",
            multiprocess_mode="livemin",
            registry=registry,
        )
        for reason in ("busy", "timeout", "draining"):
            self.shed_total.labels(reason)  # present at 0 from the start: rate() needs the series

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def analysed(self, images: int, faces: int) -> None:
        """Work done by one request."""
        self.images.inc(images)
        self.faces.inc(faces)

    def classified(self, requests: int) -> None:
        """One forward pass, for ``requests`` requests."""
        self.passes.inc()
        self.passed_requests.inc(requests)

    def shed(self, reason: str) -> None:
        """One request answered 503 without an analysis."""
        self.shed_total.labels(reason).inc()

    def model_loaded(self, model: str, model_id: str) -> None:
        """A model is loaded in this process."""
        self.loaded.labels(model, model_id).set(1)

    def process_ended(self) -> None:
        """This worker stops: its live gauges leave the sum the other workers report."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type (all workers' metrics when there are several)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry: Any = self.registry
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
