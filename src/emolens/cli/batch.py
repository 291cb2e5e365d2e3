"""``emolens batch``: collections into one table, locally or on Ray."""

from __future__ import annotations

import argparse
from typing import Any

from .._argtypes import positive_int
from ._common import (
    add_pipeline_options,
    detector_arg,
    max_pixels,
)


def register(sub: Any) -> None:
    """Add ``emolens batch`` to the subcommands."""
    p = sub.add_parser(
        "batch",
        help="analyse collections of images and videos into one Parquet/CSV/JSONL table (resumable)",
        description="One row per face (one per analysed frame of a video), one row per input with no face or "
        "an error. Re-running with the same --out skips what is done. --engine ray runs on a Ray cluster.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs, or .txt/.csv/.parquet lists")
    p.add_argument("--out", required=True, help="output file: .parquet, .csv or .jsonl (the suffix picks the format)")
    p.add_argument("--format", choices=("table", "submission"), default="table", help="submission: file,label (.csv)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--workers", type=positive_int, help="worker processes, or Ray actors (default: CPU cores)")
    p.add_argument("--threads", type=positive_int, help="threads per worker (default: 1 with several workers)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="inputs per task (one forward pass)")
    p.add_argument(
        "--part-size", type=positive_int, default=256, help="inputs per saved part: the most a killed run loses"
    )
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="analyse every N-th video frame")
    add_pipeline_options(p, detector_options=False)
    p.add_argument("--no-fallback", action="store_true", help="an image without a face is a row without a face")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    p.add_argument("--address", help="Ray cluster to join: auto, or ray://host:10001 (default: start a local one)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per Ray actor")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._batch import batch

    report = batch(
        args.inputs,
        args.out,
        detector=detector_arg(args.detector),
        model=args.model,
        engine=args.engine,
        workers=args.workers,
        threads=args.threads,
        batch_size=args.batch_size,
        part_size=args.part_size,
        every=args.every,
        fallback=not args.no_fallback,
        device=args.device,
        precision=args.precision,
        max_pixels=max_pixels(args),
        overwrite=args.overwrite,
        format=args.format,
        progress=False if args.quiet else None,
        address=args.address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
    )
    resumed = f" ({report.skipped} already done)" if report.skipped else ""
    # a submission has one line per input, a table one row per face (or per input without one)
    written = len({row["file"] for row in report.rows}) if args.format == "submission" else len(report.rows)
    print(
        f"{report.analysed} inputs analysed{resumed}: {report.faces} faces, {report.errors} errors "
        f"in {report.seconds:.1f} s; {written} rows in {report.out}"
    )
    return 0
