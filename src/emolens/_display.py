"""How results look in a notebook: ``AnalysisResult._repr_html_`` (the annotated image and probability bars)."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

from .labels import COLORS, display_label

if TYPE_CHECKING:
    from .types import AnalysisResult

__all__ = ["result_html"]

#: Longest side of the annotated image shown in a notebook (pixels).
THUMBNAIL_SIDE = 480


def result_html(result: AnalysisResult) -> str:
    """HTML for Jupyter: the annotated image (when the result came from a file that is still readable),
    then one row per face with its label and a bar per probability."""
    parts = ['<div style="font-family: system-ui, sans-serif; font-size: 13px">']
    image = _annotated_png(result)
    if image is not None:
        parts.append(f'<img src="data:image/png;base64,{image}" style="max-width: 100%; display: block">')
    count = len(result.faces)
    parts.append(
        f"<p>{count} face{'s' if count != 1 else ''} &middot; {result.image_width}x{result.image_height} &middot; "
        f"{html.escape(result.model)} + {html.escape(result.detector)}</p>"
    )
    for index, face in enumerate(result.faces, 1):
        bars = "".join(
            f'<div style="display: flex; gap: 6px; align-items: center">'
            f'<span style="width: 70px">{html.escape(display_label(label))}</span>'
            f'<span style="display: inline-block; height: 8px; width: {probability * 160:.0f}px; '
            f'background: {COLORS.get(label, "#4b5bdc")}"></span>'
            f"<span>{probability:.1%}</span></div>"
            for label, probability in sorted(face.scores.items(), key=lambda kv: kv[1], reverse=True)
        )
        note = " (whole image: no face found)" if face.fallback else ""
        parts.append(
            f'<div style="margin: 6px 0"><b>{index}. {html.escape(display_label(face.label))}</b> '
            f"{face.confidence:.0%}{note}{bars}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _annotated_png(result: AnalysisResult) -> str | None:
    """The annotated source image as base64 PNG, or None when the result has no readable source file."""
    if result.source is None:
        return None
    import cv2

    from ._draw import annotate
    from .errors import EmolensError

    try:
        canvas = annotate(result.source, result)
    except EmolensError:  # the file moved or changed since: show the table only
        return None
    scale = min(1.0, THUMBNAIL_SIDE / max(canvas.shape[:2]))
    if scale < 1.0:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", canvas)
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else None
