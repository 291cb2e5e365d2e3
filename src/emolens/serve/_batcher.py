"""Micro-batching: the faces of concurrent requests classified in one forward pass.

Each request's thread detects its own images (:meth:`Analyzer.detect`) inside
:meth:`FaceBatcher.detecting`, then hands them to :meth:`FaceBatcher.classify`. The first thread to arrive
leads: it waits while other requests are still detecting (at most ``window_s``, and no longer once
``max_faces`` faces are waiting), then classifies everything that arrived in one :meth:`Analyzer.classify`
call and hands each request its results. No extra thread: a request alone is classified at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .._analyzer import Analyzer, Detected
from ..errors import InternalError, InvalidOptionError
from ..types import AnalysisResult

__all__ = ["DetectingSlot", "FaceBatcher"]

#: The longest wait a batcher accepts: beyond a second, a request would rather be answered alone.
MAX_WINDOW_S = 1.0


@dataclass(eq=False)
class _Ticket:
    """One request's detected images, and (once classified) its results or the error that stopped them."""

    detected: Sequence[Detected]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[AnalysisResult] | None = None  # None until classified
    error: BaseException | None = None

    @property
    def faces(self) -> int:
        return sum(len(d.candidates) for d in self.detected)


@dataclass(eq=False)
class DetectingSlot:
    """A request counted as on its way to :meth:`FaceBatcher.classify` (see :meth:`FaceBatcher.detecting`)."""

    released: bool = False


class FaceBatcher:
    """Joins the classification of concurrent requests that use one :class:`Analyzer` (thread-safe).

    ``window_s=0`` turns batching off: each request is classified on its own, as ``analyze_batch`` does.
    ``on_pass(requests)`` is called after each forward pass with the number of requests it served.
    """

    def __init__(self, window_s: float, max_faces: int = 64, on_pass: Callable[[int], None] | None = None) -> None:
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not 0 <= window_s <= MAX_WINDOW_S:
            raise InvalidOptionError(
                f"window_s must be a number of seconds from 0 to {MAX_WINDOW_S:g}, got {window_s!r}", option="window_s"
            )
        self.window_s = float(window_s)
        self.max_faces = max_faces
        self.on_pass = on_pass
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._leading = False
        self._detecting = 0  # requests between detecting() and classify()

    @contextlib.contextmanager
    def detecting(self) -> Iterator[DetectingSlot]:
        """Counts a request as on its way, so that a waiting leader waits for it. Pass the slot to
        :meth:`classify` (inside the ``with``) so that the hand-over leaves no moment uncounted."""
        slot = DetectingSlot()
        with self._cond:
            self._detecting += 1
        try:
            yield slot
        finally:
            with self._cond:
                self._release(slot)
                self._cond.notify_all()

    def classify(
        self, analyzer: Analyzer, detected: Sequence[Detected], *, slot: DetectingSlot | None = None
    ) -> list[AnalysisResult]:
        """``analyzer.classify(detected)``, possibly in one forward pass with other requests' faces."""
        if self.window_s <= 0 or not detected:
            with self._cond:
                self._release(slot)
            results = analyzer.classify(detected)
            if self.on_pass is not None and detected:
                self.on_pass(1)
            return results
        ticket = _Ticket(detected)
        with self._cond:
            self._waiting.append(ticket)
            self._release(slot)
            lead = not self._leading
            self._leading = True
            self._cond.notify_all()
        if lead:
            self._lead(analyzer)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        if ticket.results is None:  # cannot happen: every ticket of a pass gets results or an error
            raise InternalError("a micro-batch ended without an answer for this request")
        return ticket.results

    def _release(self, slot: DetectingSlot | None) -> None:
        """The slot's request stops counting as detecting (called with the lock held)."""
        if slot is not None and not slot.released:
            slot.released = True
            self._detecting -= 1

    def _lead(self, analyzer: Analyzer) -> None:
        """Wait for the requests still detecting (bounded), then classify every waiting ticket."""
        deadline = time.monotonic() + self.window_s
        try:
            with self._cond:
                while (
                    self._detecting > 0
                    and sum(t.faces for t in self._waiting) < self.max_faces
                    and (left := deadline - time.monotonic()) > 0
                ):
                    self._cond.wait(left)
        finally:  # even when the wait is interrupted: nobody may be left waiting for a leader
            with self._cond:
                batch, self._waiting = self._waiting, []
                self._leading = False
            self._run(analyzer, batch)

    def _run(self, analyzer: Analyzer, batch: list[_Ticket]) -> None:
        """One forward pass for the batch; if it fails, each request on its own, so one cannot fail the others.

        Every ticket ends with results or an error, whatever is raised here.
        """
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
            else:
                offset = 0
                for ticket in batch:
                    ticket.results = results[offset : offset + len(ticket.detected)]
                    offset += len(ticket.detected)
        except BaseException as exc:  # the leader raises it; the others learn their pass did not happen
            for ticket in batch:
                if ticket.results is None and ticket.error is None:
                    ticket.error = InternalError(f"the forward pass this request shared was interrupted: {exc!r:.200}")
            raise
        finally:
            for ticket in batch:
                ticket.done.set()
            if self.on_pass is not None and batch:
                self.on_pass(len(batch))
