"""Video and webcam analysis: frames -> faces -> tracks -> smoothed emotion timelines."""

from ._source import open_source
from ._stream import analyze_video
from ._timeline import TrackSummary, VideoAnalysis
from ._tracker import Tracker
from ._writer import AnnotatedVideoWriter, draw_frame

__all__ = [
    "AnnotatedVideoWriter",
    "TrackSummary",
    "Tracker",
    "VideoAnalysis",
    "analyze_video",
    "draw_frame",
    "open_source",
]
