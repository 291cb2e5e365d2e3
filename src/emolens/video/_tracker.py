"""Follow faces across frames (IoU matching with a short memory) and smooth their probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Box, Face, TrackedFace

__all__ = ["Tracker"]


@dataclass
class _Track:
    track_id: int
    box: Box
    probabilities: np.ndarray
    missed: int = 0


def _center_distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return float(np.hypot(ax - bx, ay - by)) / max(1.0, (a.width + a.height + b.width + b.height) / 4)


class Tracker:
    """Greedy association of faces to tracks by IoU, then by centre distance for fast motion.

    Args:
        smoothing: weight of the past in the exponential moving average of probabilities
            (0 = off, 0.6 default; higher is smoother and slower to react).
        max_missed: frames a track survives without a matching face before its id is retired.
        min_iou: overlap needed to match a face to a track; below it, a face whose centre is within
            ``max_center_distance`` face sizes of a track still matches.
    """

    def __init__(
        self, *, smoothing: float = 0.6, max_missed: int = 15, min_iou: float = 0.3, max_center_distance: float = 0.5
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.max_center_distance = max_center_distance
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, faces: tuple[Face, ...]) -> tuple[TrackedFace, ...]:
        """Assign every face of the next frame to a track; returns them in the input order."""
        pairs = []
        for fi, face in enumerate(faces):
            for ti, track in enumerate(self._tracks):
                iou = face.box.iou(track.box)
                distance = _center_distance(face.box, track.box)
                if iou >= self.min_iou or distance <= self.max_center_distance:
                    pairs.append((-iou, distance, fi, ti))
        pairs.sort()
        face_track: dict[int, _Track] = {}
        used: set[int] = set()
        for _, _, fi, ti in pairs:
            if fi in face_track or ti in used:
                continue
            face_track[fi] = self._tracks[ti]
            used.add(ti)
        for ti, track in enumerate(self._tracks):
            if ti not in used:
                track.missed += 1
        out = []
        for fi, face in enumerate(faces):
            raw = np.asarray(face.probabilities)
            matched = face_track.get(fi)
            if matched is None:
                track = _Track(self._next_id, face.box, raw.copy())
                self._next_id += 1
                self._tracks.append(track)
            else:
                track = matched
                track.probabilities = self.smoothing * track.probabilities + (1 - self.smoothing) * raw
                track.box, track.missed = face.box, 0
            smoothed = track.probabilities / track.probabilities.sum()
            out.append(TrackedFace(track.track_id, face, tuple(float(p) for p in smoothed)))
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return tuple(out)
