"""analyze_video(): the image pipeline per frame, plus tracking and smoothing, as a stream."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._analyzer import Analyzer
from .._api import get_analyzer
from .._checks import check_int
from .._limits import DEFAULT_MAX_PIXELS
from ..detectors import Detector
from ..errors import InvalidOptionError
from ..models import ModelSource
from ..types import FrameResult
from ._source import Frame, VideoSource, open_source
from ._tracker import Tracker

__all__ = ["analyze_video"]


def analyze_video(
    source: VideoSource,
    *,
    detector: str | Detector | None = "auto",
    model: ModelSource = "default",
    every: int = 1,
    smoothing: float = 0.6,
    max_frames: int | None = None,
    fallback: bool = False,
    device: str = "cpu",
    analyzer: Analyzer | None = None,
    detector_options: Mapping[str, Any] | None = None,
    pipelined: bool = False,
    precision: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[FrameResult]:
    """Analyse a video frame by frame, yielding one :class:`FrameResult` per processed frame.

    Frames are decoded one at a time, so memory stays flat however long the video is.

    Args:
        source: a video file path, a camera index (``0`` is the default webcam) or an iterable of
            images (numpy arrays, paths, ...) taken as frames at 30 frames per second.
        every: process every ``every``-th frame (1 = all frames).
        smoothing: exponential-moving-average weight of past probabilities per track (0 = off).
        max_frames: stop after this many processed frames.
        fallback: classify the whole frame when no face is found (off for video by default).
        analyzer: use this Analyzer instead of the shared one for ``detector``/``model``/``device``/
            ``detector_options``/``precision``/``max_pixels`` (passing any of those too is an error).
        detector_options: keyword arguments for the detector's builder, e.g. ``{"max_side": 320}``.
        pipelined: decode and detect the next frames in a second thread while this one is classified (at
            most two frames ahead); the same results in the same order. Off by default: on 2 cores it was not
            faster (docs/benchmarks.md); it is for machines with cores to spare.
        precision: as in :func:`emolens.load_model`; ``"int8"`` gave 1.8x the frames per second of the default
            in docs/benchmarks.md's video runs.
        max_pixels: refuse a video whose frames are larger than this many pixels (before decoding any).

    Raises:
        InvalidVideoError: the source cannot be opened or read.
        ImageTooLargeError: its frames are larger than the analyzer's ``max_pixels`` (40 megapixels by default).
        InvalidOptionError: ``every``, ``smoothing`` or ``max_frames`` is out of range (checked at the call).
    """
    _check_count("every", every)
    max_pixels = check_int("max_pixels", max_pixels, minimum=1)
    if max_frames is not None:
        _check_count("max_frames", max_frames)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
        raise InvalidOptionError(f"smoothing must be a number in [0, 1), got {smoothing!r}", option="smoothing")
    if analyzer is not None:  # its own settings answer: others given beside it would be silently ignored
        given = {
            "detector": detector != "auto",
            "model": model != "default",
            "device": device != "cpu",
            "detector_options": bool(detector_options),
            "precision": precision != "auto",
            "max_pixels": max_pixels != DEFAULT_MAX_PIXELS,
        }
        if any(given.values()):
            names = ", ".join(name for name, set_ in given.items() if set_)
            raise InvalidOptionError(
                f"pass either analyzer or {names}: the analyzer's own settings answer", option="analyzer"
            )
    # Checked and opened now, not at the first next(): a bad argument or source fails at the call.
    frames = open_source(source, max_pixels=analyzer.max_pixels if analyzer is not None else max_pixels)
    analyzer = analyzer or get_analyzer(
        detector, model, device, detector_options, max_pixels=max_pixels, precision=precision
    )
    tracker = Tracker(smoothing=float(smoothing))
    if pipelined:
        return _pipelined(frames, analyzer, tracker, every, max_frames, fallback)
    return _stream(frames, analyzer, tracker, every, max_frames, fallback)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{name} must be a whole number >= 1, got {value!r}", option=name)


def _stream(
    frames: Iterable[Frame], analyzer: Analyzer, tracker: Tracker, every: int, max_frames: int | None, fallback: bool
) -> Iterator[FrameResult]:
    processed = 0
    for frame in frames:
        if frame.index % every:
            continue
        result = analyzer.analyze(frame.image, fallback=fallback)
        faces = tracker.update(result.faces)
        yield FrameResult(frame.index, frame.time, faces, result.image_width, result.image_height, image=frame.image)
        processed += 1
        if max_frames is not None and processed >= max_frames:
            break  # before decoding another frame


_DONE = object()  # the producer's last item


def _pipelined(
    frames: Iterable[Frame], analyzer: Analyzer, tracker: Tracker, every: int, max_frames: int | None, fallback: bool
) -> Iterator[FrameResult]:
    """:func:`_stream` with decoding and detection in a second thread, a bounded queue between the stages."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        wanted = 0
        iterator = iter(frames)
        try:
            for frame in iterator:
                if stop.is_set():
                    break
                if frame.index % every:
                    continue
                ahead.put((frame, analyzer.detect(frame.image, fallback=fallback)))
                wanted += 1
                if max_frames is not None and wanted >= max_frames:
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a capture is released in the thread that read it, and at once
            ahead.put(_DONE)

    worker = threading.Thread(target=produce, name="emolens-video-detect", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            frame: Frame = item[0]
            result = analyzer.classify([item[1]])[0]
            faces = tracker.update(result.faces)
            yield FrameResult(
                frame.index, frame.time, faces, result.image_width, result.image_height, image=frame.image
            )
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.05)
        worker.join()
