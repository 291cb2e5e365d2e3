"""``emolens download``: prefetch weights for offline use."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import EmolensError
from ._common import (
    err,
)


def register(sub: Any) -> None:
    """Add ``emolens download`` to the subcommands."""
    p = sub.add_parser("download", help="prefetch weights for offline use")
    p.add_argument("names", nargs="*", metavar="NAME", help="detector or model names, or a pinned release (default@v2)")
    p.add_argument("--all", action="store_true", help="every registered detector and model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import download
    from .._registry import DetectorSpec, ModelSpec
    from ..detectors import DETECTORS
    from ..models import MODELS
    from ..weights import fetch

    if not args.names and not args.all:
        err("name detectors/models to download, or pass --all")
        return 2
    if not args.all:
        for path in download(list(args.names)):
            print(path)
        return 0
    failed = 0
    specs: list[DetectorSpec | ModelSpec] = [*DETECTORS.specs(), *MODELS.specs()]
    for spec in specs:  # every file is tried, and each result reported
        for weights in spec.weights:
            try:
                print(f"{spec.name}: {fetch(weights)}")
            except EmolensError as exc:
                failed += 1
                print(f"{spec.name}: FAILED: {exc}")
    if failed:
        err(f"{failed} file(s) could not be fetched (see above); the others are ready")
        return 2
    return 0
