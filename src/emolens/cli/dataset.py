"""``emolens dataset``: build training datasets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._argtypes import positive_int, unit_interval


def register(sub: Any) -> None:
    """Add ``emolens dataset`` to the subcommands."""
    p = sub.add_parser("dataset", help="build training datasets")
    dataset = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    p = dataset.add_parser(
        "crop",
        help="crop annotated faces from photos into a train/val/test dataset",
        description="Read a CSV/TSV table (image path or URL, optional box x,y,width,height, one or more "
        "annotator label columns), take each face's majority label, crop it and write "
        "<out>/<split>/<label>/*.png, labels.txt, errors.csv and summary.json. Re-running retries only "
        "the rows not written yet.",
    )
    p.add_argument("table", help="CSV or TSV (.tsv) table; image paths are relative to it")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument(
        "--split", type=_ratios, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL[,TEST]", help="default 0.8,0.1,0.1"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stable per-row split")
    p.add_argument("--size", type=positive_int, default=96, help="side of the saved square crops (pixels)")
    p.add_argument("--margin", type=unit_interval, default=0.0, help="enlarge each box by this fraction")
    p.add_argument("--detector", default="auto", help="detector for rows without a box ('none': skip them)")
    p.add_argument("--retries", type=positive_int, default=3, help="tries per image URL")
    p.set_defaults(func=run_crop)


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 2 or 3 comma-separated fractions, got {text!r}") from None
    if len(values) not in (2, 3) or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected 2 or 3 non-negative fractions summing to 1, got {text!r}")
    return values


def run_crop(args: argparse.Namespace) -> int:
    from ..training import build_crop_dataset

    summary = build_crop_dataset(
        args.table,
        args.out,
        ratios=args.split,
        seed=args.seed,
        size=args.size,
        margin=args.margin,
        detector=None if args.detector == "none" else args.detector,
        retries=args.retries,
    )
    for split, counts in sorted(summary.written.items()):
        print(f"{split}: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    print(
        f"labels: {', '.join(summary.labels)}; already done {summary.already_done}; set aside (no majority) "
        f"{summary.no_majority}; failed {summary.failed} (see {Path(args.out) / 'errors.csv'})"
    )
    return 0
