"""VideoAnalysis: collect a stream of frame results into per-track emotion timelines."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..types import Emotion, FrameResult

__all__ = ["TrackSummary", "VideoAnalysis"]

_EMOTIONS = tuple(Emotion)


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """One person's emotions over the video: dominant emotion and share of frames per emotion."""

    track_id: int
    frames: int
    first_time: float
    last_time: float
    dominant: Emotion
    shares: dict[Emotion, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "dominant": self.dominant.value,
            "shares": {e.value: s for e, s in self.shares.items()},
        }


@dataclass(frozen=True, slots=True)
class _Row:
    frame: int
    time: float
    track_id: int
    box: tuple[int, int, int, int]
    smoothed: tuple[float, ...]
    raw: tuple[float, ...]


class VideoAnalysis:
    """Accumulates :class:`FrameResult` objects (without their images) into a timeline.

    >>> analysis = VideoAnalysis()                        # doctest: +SKIP
    >>> for frame in emolens.analyze_video("talk.mp4"):    # doctest: +SKIP
    ...     analysis.add(frame)
    """

    def __init__(self, frames: Iterable[FrameResult] = ()) -> None:
        self._rows: list[_Row] = []
        self.frames = 0
        for frame in frames:
            self.add(frame)

    def add(self, frame: FrameResult) -> None:
        self.frames += 1
        for face in frame.faces:
            b = face.box
            self._rows.append(
                _Row(
                    frame.index,
                    frame.time,
                    face.track_id,
                    (b.x, b.y, b.width, b.height),
                    face.probabilities,
                    face.raw.probabilities,
                )
            )

    @property
    def track_ids(self) -> list[int]:
        return sorted({r.track_id for r in self._rows})

    def summary(self) -> dict[int, TrackSummary]:
        """Per track: frames seen, time span, dominant (smoothed) emotion and its share per emotion."""
        out = {}
        for track_id in self.track_ids:
            rows = [r for r in self._rows if r.track_id == track_id]
            top = np.bincount([int(np.argmax(r.smoothed)) for r in rows], minlength=len(_EMOTIONS)) / len(rows)
            out[track_id] = TrackSummary(
                track_id,
                len(rows),
                rows[0].time,
                rows[-1].time,
                _EMOTIONS[int(top.argmax())],
                {e: float(s) for e, s in zip(_EMOTIONS, top, strict=True)},
            )
        return out

    def _records(self) -> list[dict[str, Any]]:
        records = []
        for r in self._rows:
            record: dict[str, Any] = {
                "frame": r.frame,
                "time": round(r.time, 4),
                "track": r.track_id,
                "x": r.box[0],
                "y": r.box[1],
                "width": r.box[2],
                "height": r.box[3],
                "emotion": _EMOTIONS[int(np.argmax(r.smoothed))].value,
            }
            record.update({e.value: round(p, 6) for e, p in zip(_EMOTIONS, r.smoothed, strict=True)})
            record.update({f"raw_{e.value}": round(p, 6) for e, p in zip(_EMOTIONS, r.raw, strict=True)})
            records.append(record)
        return records

    def to_csv(self, path: str | Path) -> None:
        """One row per face per frame: frame, time, track, box, emotion, 7 smoothed and 7 raw probabilities."""
        header = [
            "frame",
            "time",
            "track",
            "x",
            "y",
            "width",
            "height",
            "emotion",
            *(e.value for e in _EMOTIONS),
            *(f"raw_{e.value}" for e in _EMOTIONS),
        ]
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(self._records())

    def to_dataframe(self) -> Any:
        """The CSV rows as a pandas DataFrame (needs pandas)."""
        pandas = require("pandas", extra="plot", feature="VideoAnalysis.to_dataframe")
        return pandas.DataFrame(self._records())

    def plot_timeline(self, path: str | Path) -> None:
        """Stacked smoothed probabilities over time, one panel per track (needs matplotlib)."""
        require("matplotlib", extra="plot", feature="VideoAnalysis.plot_timeline")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tracks = self.track_ids or [0]
        fig, axes = plt.subplots(len(tracks), 1, figsize=(10, 2.2 * len(tracks) + 0.6), sharex=True, squeeze=False)
        colors = ["#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#7f7f7f"]
        for ax, track_id in zip(axes[:, 0], tracks, strict=True):
            rows = [r for r in self._rows if r.track_id == track_id]
            if rows:
                times = [r.time for r in rows]
                stacks = np.array([r.smoothed for r in rows]).T
                ax.stackplot(times, stacks, labels=[e.label() for e in _EMOTIONS], colors=colors, alpha=0.9)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"track {track_id}")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle("Emotion probabilities over time")
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)
        plt.close(fig)
