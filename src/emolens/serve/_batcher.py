"""Micro-batching: the faces of concurrent requests classified in one forward pass.

Each request's thread detects its own images (:meth:`Analyzer.detect`), then hands them to the
:class:`FaceBatcher` of its (detector, model) pair. The first thread to arrive leads: it waits while
other requests are still detecting (at most ``window_s``, and no longer once ``max_faces`` faces are
waiting), then classifies everything that arrived in one :meth:`Analyzer.classify` call and hands each
request its results. No extra thread: a request alone is classified at once, without waiting.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .._analyzer import Analyzer, Detected
from ..types import AnalysisResult

__all__ = ["FaceBatcher"]


@dataclass(eq=False)
class _Ticket:
    """One request's detected images, and (once classified) its results or the error that stopped them."""

    detected: Sequence[Detected]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[AnalysisResult] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def faces(self) -> int:
        return sum(len(d.candidates) for d in self.detected)


class FaceBatcher:
    """Joins the classification of concurrent requests that use one :class:`Analyzer` (thread-safe).

    ``window_s=0`` turns batching off: each request is classified on its own, as ``analyze_batch`` does.
    ``on_pass(requests)`` is called after each forward pass with the number of requests it served.
    """

    def __init__(self, window_s: float, max_faces: int = 64, on_pass: Callable[[int], None] | None = None) -> None:
        self.window_s = window_s
        self.max_faces = max_faces
        self.on_pass = on_pass
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._leading = False
        self._detecting = 0  # requests of this pair between detecting() and classify()

    @contextlib.contextmanager
    def detecting(self) -> Iterator[None]:
        """Marks a request as on its way here, so that a waiting leader waits for it."""
        with self._cond:
            self._detecting += 1
        try:
            yield
        finally:
            with self._cond:
                self._detecting -= 1
                self._cond.notify_all()

    def classify(self, analyzer: Analyzer, detected: Sequence[Detected]) -> list[AnalysisResult]:
        """``analyzer.classify(detected)``, possibly in one forward pass with other requests' faces."""
        if self.window_s <= 0 or not detected:
            results = analyzer.classify(detected)
            if self.on_pass is not None and detected:
                self.on_pass(1)
            return results
        ticket = _Ticket(detected)
        with self._cond:
            self._waiting.append(ticket)
            lead = not self._leading
            self._leading = True if lead else self._leading
            self._cond.notify_all()
        if lead:
            self._lead(analyzer)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.results

    def _lead(self, analyzer: Analyzer) -> None:
        """Wait for the requests still detecting (bounded), then classify every waiting ticket."""
        deadline = time.monotonic() + self.window_s
        with self._cond:
            while (
                self._detecting > 0
                and sum(t.faces for t in self._waiting) < self.max_faces
                and (left := deadline - time.monotonic()) > 0
            ):
                self._cond.wait(left)
            batch, self._waiting = self._waiting, []
            self._leading = False
        self._run(analyzer, batch)

    def _run(self, analyzer: Analyzer, batch: list[_Ticket]) -> None:
        """One forward pass for the batch; if it fails, each request on its own, so one cannot fail the others."""
        try:
            try:
                results = analyzer.classify([d for ticket in batch for d in ticket.detected])
            except Exception:
                if len(batch) == 1:
                    raise
                for ticket in batch:
                    try:
                        ticket.results = analyzer.classify(ticket.detected)
                    except Exception as exc:  # handed to that request's thread, which raises it
                        ticket.error = exc
                return
            offset = 0
            for ticket in batch:
                ticket.results = results[offset : offset + len(ticket.detected)]
                offset += len(ticket.detected)
        except Exception as exc:
            batch[0].error = exc
        finally:
            for ticket in batch:
                ticket.done.set()
            if self.on_pass is not None:
                self.on_pass(len(batch))
