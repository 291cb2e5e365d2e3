"""``emolens analyze``: detect faces and classify emotions in images."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import EmolensError
from ._common import (
    add_pipeline_options,
    detector_arg,
    err,
    error_record,
    error_text,
    expand_paths,
    max_pixels,
    output_folder,
)


def register(sub: Any) -> None:
    """Add ``emolens analyze`` to the subcommands."""
    p = sub.add_parser("analyze", help="detect faces and classify emotions in images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    add_pipeline_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write copies with boxes and labels drawn into OUT_DIR")
    p.add_argument("--no-fallback", action="store_true", help="report no face instead of classifying the whole image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2

    from .._analyzer import Analyzer
    from .._draw import annotate

    out_dir = output_folder(args.annotate)  # before the models load: a bad folder fails at once
    analyzer = Analyzer(
        detector_arg(args.detector),
        args.model,
        device=args.device,
        fallback=not args.no_fallback,
        detector_options=args.detector_options,
        precision=args.precision,
        max_pixels=max_pixels(args),
    )
    inputs = list(expand_paths(args.paths))
    files = [path for _, path in inputs if path is not None]
    # Annotated copies keep the inputs' folder structure below their common folder: a/x.jpg, b/x.jpg stay apart.
    common = Path(os.path.commonpath([str(p.resolve().parent) for p in files])) if files else Path()
    failures = 0
    for arg, path in inputs:
        if path is None:
            failures += 1
            message = f"no images match {arg!r}"
            print(error_record(arg, EmolensError(message)), flush=True) if args.json else err(message)
            continue
        try:
            result = analyzer.analyze(path)
        except EmolensError as exc:
            failures += 1
            text = error_text(exc, args)
            print(error_record(str(path), exc, text), flush=True) if args.json else err(text)
            continue
        if args.json:
            print(result.to_json(), flush=True)
        else:
            _print_table(path, result)
        if out_dir is not None:
            target = out_dir / path.resolve().relative_to(common)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), annotate(path, result)):
                failures += 1
                err(f"could not write {target} (is its suffix an image format?)")
    return 1 if failures else 0


def _print_table(path: Path, result: object) -> None:
    from ..types import AnalysisResult

    assert isinstance(result, AnalysisResult)
    count = len(result.faces)
    print(
        f"{path}  {result.image_width}x{result.image_height}  detector={result.detector_id or result.detector}  "
        f"model={result.model_id or result.model}  "
        f"{count} face{'s' if count != 1 else ''}  {result.timings_ms.get('total', 0):.0f} ms"
    )
    va = any(face.valence is not None for face in result.faces)
    if count:
        extra = f"  {'valence':>7} {'arousal':>7}" if va else ""
        print(f"  {'#':>2}  {'box x,y,w,h':<20} {'emotion':<9} {'prob':>5}  {'second':<15}{extra}")
    for i, face in enumerate(result.faces, 1):
        ranked = sorted(face.scores.items(), key=lambda kv: kv[1], reverse=True)
        second = f"{ranked[1][0]} {ranked[1][1]:.2f}" if len(ranked) > 1 else ""
        box = f"{face.box.x},{face.box.y},{face.box.width},{face.box.height}"
        note = "  (whole image: no face found)" if face.fallback else ""
        extra = f"  {face.valence or 0.0:>+7.2f} {face.arousal or 0.0:>+7.2f}" if va else ""
        print(f"  {i:>2}  {box:<20} {face.label:<9} {face.confidence:>5.2f}  {second:<15}{extra}{note}")
