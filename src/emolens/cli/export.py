"""``emolens export``: export a training run."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from .._argtypes import unit_interval


def register(sub: Any) -> None:
    """Add ``emolens export`` to the subcommands."""
    p = sub.add_parser("export", help="export a training run: weights + model card (JSON and Markdown)")
    p.add_argument("run", help="run folder written by `emolens train`")
    p.add_argument("--out", required=True, help="folder for <name>.safetensors, <name>.json and <name>.md")
    p.add_argument("--name", required=True, help="file stem, e.g. emolens-vgg-wide-v3")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("--note", default="", help="provenance note printed in the model card")
    p.add_argument(
        "--register-as",
        metavar="MODEL",
        help="model name the weights will be registered under (default: the model the run trained)",
    )
    p.add_argument(
        "--prior-shift",
        type=unit_interval,
        default=0.0,
        metavar="TAU",
        help="add TAU * log(training class prior) to the output bias: for runs trained with --logit-adjustment "
        "(0: class-balanced, 1: back to the classes' frequencies; default 0)",
    )
    p.add_argument(
        "--last-epoch",
        action="store_true",
        help="export the last epoch's weights instead of the best epoch's (chosen on unshifted val scores)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training._export import export_run

    card = export_run(
        args.run,
        args.out,
        args.name,
        half=args.half,
        note=args.note,
        registered_as=args.register_as,
        prior_shift=args.prior_shift,
        last_epoch=args.last_epoch,
    )
    m = card["metrics"]
    print(
        f"wrote {card['weights_file']} ({card['weights_bytes']:,} bytes, sha256 {card['weights_sha256']}); "
        f"val {m['val']['accuracy']:.4f}, with flip TTA {m['val_tta']['accuracy']:.4f}, "
        f"train {m['train']['accuracy']:.4f}"
    )
    print(f"use it: emolens analyze IMAGE --model {shlex.quote(str(Path(args.out) / (args.name + '.json')))}")
    return 0
