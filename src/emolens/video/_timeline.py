"""VideoAnalysis: collect a stream of frame results into per-track emotion timelines."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InvalidOptionError
from ..labels import COLORS, FER2013, display_label
from ..types import FrameResult

__all__ = ["TrackSummary", "VideoAnalysis"]


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """One person's emotions over the video: dominant label and share of frames per label (model's order)."""

    track_id: int
    frames: int
    first_time: float
    last_time: float
    dominant: str
    shares: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "dominant": self.dominant,
            "shares": dict(self.shares),
        }


@dataclass(frozen=True, slots=True)
class _Row:
    frame: int
    time: float
    track_id: int
    box: tuple[int, int, int, int]
    smoothed: tuple[float, ...]
    raw: tuple[float, ...]
    valence: float | None
    arousal: float | None


class VideoAnalysis:
    """Accumulates :class:`FrameResult` objects (without their images) into a timeline.

    >>> analysis = VideoAnalysis()                        # doctest: +SKIP
    >>> for frame in emolens.analyze_video("talk.mp4"):    # doctest: +SKIP
    ...     analysis.add(frame)
    """

    def __init__(self, frames: Iterable[FrameResult] = ()) -> None:
        self._rows: list[_Row] = []
        self.frames = 0
        self.labels: tuple[str, ...] = FER2013.labels  # the model's labels, taken from the first face
        self._valence_arousal = False
        for frame in frames:
            self.add(frame)

    def add(self, frame: FrameResult) -> None:
        self.frames += 1
        for face in frame.faces:
            if not self._rows:
                self.labels = face.labels
            elif face.labels != self.labels:
                raise InvalidOptionError(
                    "a VideoAnalysis collects the frames of one model: these faces have other labels", option="model"
                )
            b = face.box
            raw = face.raw
            self._valence_arousal = self._valence_arousal or raw.valence is not None
            self._rows.append(
                _Row(
                    frame.index,
                    frame.time,
                    face.track_id,
                    (b.x, b.y, b.width, b.height),
                    face.probabilities,
                    raw.probabilities,
                    raw.valence,
                    raw.arousal,
                )
            )

    @property
    def track_ids(self) -> list[int]:
        return sorted({r.track_id for r in self._rows})

    def summary(self) -> dict[int, TrackSummary]:
        """Per track: frames seen, time span, dominant (smoothed) label and its share per label."""
        out = {}
        for track_id in self.track_ids:
            rows = [r for r in self._rows if r.track_id == track_id]
            top = np.bincount([int(np.argmax(r.smoothed)) for r in rows], minlength=len(self.labels)) / len(rows)
            out[track_id] = TrackSummary(
                track_id,
                len(rows),
                rows[0].time,
                rows[-1].time,
                self.labels[int(top.argmax())],
                {label: float(s) for label, s in zip(self.labels, top, strict=True)},
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
                "emotion": self.labels[int(np.argmax(r.smoothed))],
            }
            record.update({label: round(p, 6) for label, p in zip(self.labels, r.smoothed, strict=True)})
            record.update({f"raw_{label}": round(p, 6) for label, p in zip(self.labels, r.raw, strict=True)})
            if self._valence_arousal:
                record["valence"] = None if r.valence is None else round(r.valence, 6)
                record["arousal"] = None if r.arousal is None else round(r.arousal, 6)
            records.append(record)
        return records

    def _header(self) -> list[str]:
        return [
            "frame",
            "time",
            "track",
            "x",
            "y",
            "width",
            "height",
            "emotion",
            *self.labels,
            *(f"raw_{label}" for label in self.labels),
            *(("valence", "arousal") if self._valence_arousal else ()),
        ]

    def to_csv(self, path: str | Path) -> None:
        """One row per face per frame: frame, time, track, box, top label, smoothed and raw probabilities
        (a column per label of the model), and valence and arousal for models that predict them."""
        header = self._header()
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(self._records())

    def to_dataframe(self) -> Any:
        """The CSV rows as a pandas DataFrame (needs pandas)."""
        pandas = require("pandas", extra="plot", feature="VideoAnalysis.to_dataframe")
        return pandas.DataFrame(self._records(), columns=self._header())

    def plot_timeline(self, path: str | Path) -> None:
        """Stacked smoothed probabilities over time, one panel per track (needs matplotlib)."""
        require("matplotlib", extra="plot", feature="VideoAnalysis.plot_timeline")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tracks = self.track_ids or [0]
        fig, axes = plt.subplots(len(tracks), 1, figsize=(10, 2.2 * len(tracks) + 0.6), sharex=True, squeeze=False)
        others = iter(plt.get_cmap("tab20")(np.linspace(0, 1, 20)))
        colors = [COLORS[label] if label in COLORS else next(others) for label in self.labels]
        for ax, track_id in zip(axes[:, 0], tracks, strict=True):
            rows = [r for r in self._rows if r.track_id == track_id]
            if rows:
                times = [r.time for r in rows]
                stacks = np.array([r.smoothed for r in rows]).T
                names = [display_label(label) for label in self.labels]
                ax.stackplot(times, stacks, labels=names, colors=colors, alpha=0.9)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"track {track_id}")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle("Emotion probabilities over time")
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)
        plt.close(fig)
