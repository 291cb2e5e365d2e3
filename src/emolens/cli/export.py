"""``emolens export``: export a training run (weights + card), or any emolens model as an ONNX graph + card."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from .._argtypes import unit_interval


def register(sub: Any) -> None:
    """Add ``emolens export`` to the subcommands."""
    p = sub.add_parser(
        "export",
        help="export a training run: weights + model card (JSON and Markdown); with --onnx, any emolens model "
        "as an ONNX graph + card",
    )
    p.add_argument(
        "run",
        help="run folder written by `emolens train`; with --onnx, any model: a registered name ('default'), "
        "a pinned version, a card (.json) or a run folder",
    )
    p.add_argument("--out", required=True, help="folder for <name>.safetensors (or .onnx), <name>.json and <name>.md")
    p.add_argument(
        "--onnx",
        action="store_true",
        help="write <name>.onnx for deployment without emolens: input as the card's `input` says, output calibrated "
        "log-probabilities (flip TTA inside where the model runs it); the card loads in emolens too",
    )
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
        "(0: class-balanced; towards 1, back to the classes' frequencies; in [0, 1), default 0)",
    )
    p.add_argument(
        "--last-epoch",
        action="store_true",
        help="export the last epoch's weights instead of the best epoch's (chosen on unshifted val scores)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.onnx:
        return _run_onnx(args)
    from ..training import export_run

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
    assert card.record is not None  # export measures every card it writes
    m = card.record.metrics
    print(
        f"wrote {card.weights_file} ({card.record.weights_bytes:,} bytes, sha256 {card.weights_sha256}); "
        f"val {m.val.accuracy:.4f}, with flip TTA {m.val_tta.accuracy:.4f}, train {m.train.accuracy:.4f}"
    )
    print(f"use it: emolens analyze IMAGE --model {shlex.quote(str(Path(args.out) / (args.name + '.json')))}")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from ..errors import InvalidOptionError
    from ..models import export_onnx

    run_only = [
        flag
        for flag, given in (
            ("--half", args.half),
            ("--note", args.note),
            ("--register-as", args.register_as),
            ("--prior-shift", args.prior_shift),
            ("--last-epoch", args.last_epoch),
        )
        if given
    ]
    if run_only:
        raise InvalidOptionError(
            f"{', '.join(run_only)}: only for exporting a training run, not with --onnx", option="onnx"
        )
    card = export_onnx(args.run, args.out, args.name)
    graph = Path(args.out) / card.weights_file
    print(f"wrote {graph} ({graph.stat().st_size:,} bytes, sha256 {card.weights_sha256}) and {args.name}.json")
    print(f"input: {card.input.describe()}; output: log-probabilities over {', '.join(card.labels)}")
    print(f"check it: emolens analyze IMAGE --model {shlex.quote(str(Path(args.out) / (args.name + '.json')))}")
    return 0
