"""One server process's state: settings, the inference pool, in-flight slots, readiness and draining.

Routes and middleware read and change the process through :class:`Service`; nothing here knows HTTP
beyond :class:`~._errors.RequestError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

from .._analyzer import Analyzer
from .._api import get_analyzer
from .._registry import DetectorSpec, ModelSpec
from ..detectors import DETECTORS
from ..errors import EmolensError, UnknownNameError
from ..models import MODELS, model_spec, model_versions, pinned_spec
from ._batcher import FaceBatcher
from ._config import ServeConfig, detector_choice
from ._errors import RequestError
from ._metrics import Metrics

__all__ = ["Lease", "RequestOptions", "Service", "Slots", "drain_on_sigterm"]

log = logging.getLogger("emolens.serve")
T = TypeVar("T")


class Slots:
    """The in-flight limit: a counter that refuses instead of waiting (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.used -= 1


class Lease:
    """One taken slot; given back exactly once, by the request or, once handed to the pool, by its work."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._held = True
        self.in_pool = False

    def give_back(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots.give_back()


@dataclass(frozen=True)
class RequestOptions:
    """What one analysis request asks for, with the server's defaults filled in and names checked."""

    detector: str | None
    model: str
    fallback: bool
    min_face_size: int


class Service:
    """One server process: its configuration, inference pool, in-flight slots, readiness and metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.pool = ThreadPoolExecutor(config.threads, thread_name_prefix="emolens-analyze")
        self.slots = Slots(config.max_in_flight)
        self.ready = threading.Event()
        self.draining = threading.Event()  # set on SIGTERM: requests in flight finish, new ones get 503
        self.startup_error: str | None = None
        self.metrics = Metrics()
        self._loaded: dict[str, str] = {}  # model name -> identity
        self._available: dict[str, bool] = {}  # "model:<name>" / "detector:<name>" -> weights and packages here
        # one micro-batcher per shared Analyzer, gone with it when get_analyzer's bounded cache lets it go
        self._precisions: dict[str, str] = {}  # model source -> precision it runs at (bounded by the names)
        self._batchers: weakref.WeakKeyDictionary[Analyzer, FaceBatcher] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # --- names a client may use -------------------------------------------------------------
    @staticmethod
    def model_specs() -> dict[str, ModelSpec]:
        """Registered models and every pinned version (``default@v4``), by the name a request uses."""
        return {**{spec.name: spec for spec in MODELS.specs()}, **model_versions()}

    def model_names(self) -> list[str]:
        """The models a request may name: the configured ones, or every registered name and pinned version."""
        names = list(self.config.models) if self.config.models is not None else list(self.model_specs())
        return names if self.config.model in names else [self.config.model, *names]

    def model_source(self, requested: str | None) -> str:
        """The model for a request. A client's string is only ever matched against names, never used as a path.

        Without a ``--models`` list, a weights identity that results record (``model_id``) works too.
        """
        if requested is None or requested == self.config.model:
            return self.config.model
        names = self.model_names()
        if requested in names:
            return requested
        if self.config.models is None and "@" in requested:
            try:
                return pinned_spec(requested).name  # matched against the registry's data only
            except UnknownNameError:
                pass
        raise UnknownNameError("model", requested, names)

    def detector_name(self, requested: str | None) -> str | None:
        """The detector for a request (``None``: no detection); UnknownNameError for a name not registered."""
        return detector_choice(self.config.detector if requested is None else requested)

    def options(
        self, detector: str | None, model: str | None, fallback: bool, min_face_size: int | None
    ) -> RequestOptions:
        """A request's query parameters resolved: unknown names are refused before any upload is read."""
        min_size = self.config.min_face_size if min_face_size is None else min_face_size
        return RequestOptions(self.detector_name(detector), self.model_source(model), fallback, min_size)

    # --- what this process has ------------------------------------------------------------------
    def loaded(self) -> dict[str, str]:
        """Models loaded in this process: name -> identity."""
        with self._lock:
            return dict(self._loaded)

    def available(self, spec: ModelSpec | DetectorSpec) -> bool:
        """Its packages are installed and its weights are on this machine (hash-checked once per process)."""
        from ..weights import is_available

        key = f"{type(spec).__name__}:{spec.name}"
        with self._lock:
            known = self._available.get(key)
        if known is None:
            modules: tuple[str, ...] = (
                ("onnxruntime",) if isinstance(spec, ModelSpec) and spec.runtime == "onnx" else ()
            )
            if isinstance(spec, DetectorSpec):
                modules = spec.requires
            known = all(importlib.util.find_spec(m) is not None for m in modules) and all(
                is_available(w) for w in spec.weights
            )
            with self._lock:
                self._available[key] = known
        return known

    # --- work in the pool ---------------------------------------------------------------------
    def analyzer(self, detector: str | None, model: str) -> Analyzer:
        """The shared Analyzer of a (detector, model) pair, built on first use; loaded models are counted."""
        precision = self.precision_for(model)
        analyzer = get_analyzer(detector, model, max_pixels=self.config.max_pixels, precision=precision)
        with self._lock:
            if analyzer.model.name not in self._loaded:
                self._loaded[analyzer.model.name] = analyzer.model.identity
                self.metrics.model_loaded(analyzer.model.name, analyzer.model.identity)
        return analyzer

    def precision_for(self, model: str) -> str:
        """The server's precision for ``model``: its ``int8`` covers the models that have an int8 graph, the others
        run at ``"auto"`` (a result's ``model_id`` tells them apart)."""
        if self.config.precision != "int8":
            return self.config.precision
        with self._lock:
            known = self._precisions.get(model)
        if known is None:
            try:
                known = "int8" if model_spec(model).int8 else "auto"
            except EmolensError:  # reported by the model's own loading, with its message
                known = "auto"
            with self._lock:
                self._precisions[model] = known
        return known

    def batcher(self, analyzer: Analyzer) -> FaceBatcher:
        """The micro-batcher that joins the forward passes of concurrent requests using ``analyzer``."""
        with self._lock:
            batcher = self._batchers.get(analyzer)
            if batcher is None:
                window_s = self.config.batch_window_ms / 1e3
                batcher = self._batchers[analyzer] = FaceBatcher(window_s, on_pass=self.metrics.classified)
            return batcher

    def start_up(self) -> None:
        """Load (and warm up) the default pipeline; ``/readyz`` answers 200 once this has finished."""
        try:
            specs = self.model_specs()
            for detector in DETECTORS.specs():  # hashes the weights once, here in the pool rather than in a request
                self.available(detector)
            for name in self.model_names():
                if name in specs:
                    self.available(specs[name])
        except Exception:  # availability is advice: a failure here must not stop the server
            log.exception("emolens serve: could not check which weights are here")
        try:
            analyzer = self.analyzer(self.detector_name(None), self.config.model)
            if self.config.warmup:
                analyzer.warmup()
        except EmolensError as exc:  # the client reads what it can do; the log has the operator's details
            self.startup_error = f"{type(exc).__name__}: {RequestError.from_emolens(exc).message}"
            log.error("emolens serve: the default pipeline could not be loaded: %s", exc)
        except Exception:
            self.startup_error = "InternalError: the default model could not be loaded; the error is in the server log"
            log.exception("emolens serve: the default pipeline could not be loaded")
        else:
            self.ready.set()
            self.metrics.ready.set(1)

    async def run(self, work: Callable[[], T], lease: Lease) -> T:
        """Run ``work`` in the pool within the request time limit; the lease is given back when the work ends.

        On time-out the client is answered at once; work already running cannot be interrupted, so its
        slot stays taken until it ends (work still queued is cancelled and gives it back at once).
        """
        future: Future[T] = self.pool.submit(work)
        lease.in_pool = True
        future.add_done_callback(lambda _: lease.give_back())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.request_timeout_s)
        except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on
            self.metrics.shed("timeout")
            raise RequestError(
                503,
                "Timeout",
                f"the analysis took longer than {self.config.request_timeout_s:g} s; "
                "send a smaller image or retry when the server is less busy",
                retry_after=5,
            ) from None

    def take_slot(self) -> Lease:
        """An in-flight slot for a request, or 503 at once when none is free (never a queue)."""
        if not self.slots.try_take():
            self.metrics.shed("busy")
            raise RequestError(
                503,
                "Busy",
                f"the server is at its limit of {self.config.max_in_flight} requests at once; retry shortly",
                retry_after=1,
            )
        return Lease(self.slots)


@contextlib.contextmanager
def drain_on_sigterm(service: Service) -> Iterator[None]:
    """While the app runs: SIGTERM first marks ``service`` as draining (503 for what still arrives), then
    does what the handler before it did (uvicorn's: stop accepting, let requests in flight finish)."""
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def drain(signum: int, frame: FrameType | None) -> None:
        service.draining.set()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, drain)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is drain:
            signal.signal(signal.SIGTERM, previous)
