"""``Job``: the settings of a batch run, in a module that imports nothing heavy (the driver stays light)."""

from __future__ import annotations

from dataclasses import dataclass

from .._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE

__all__ = ["Job"]


@dataclass(frozen=True, slots=True)
class Job:
    """What to run on every input: plain values, so it travels to worker processes and Ray actors."""

    detector: str | None = "auto"
    model: str = "default"
    device: str = "cpu"
    fallback: bool = True
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    every: int = 1
    precision: str = "auto"  # "auto", "float32" or "int8"; "fastest" is resolved by the driver first
    #: (output, detector_id) when the output already holds rows of one detector: a worker whose detector is
    #: another refuses to start, so a resumed run never mixes two detectors' rows in one table
    resumes: tuple[str, str] | None = None
