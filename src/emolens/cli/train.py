"""``emolens train``: train an emotion model."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Sequence
from typing import Any

from .._argtypes import positive_int
from ..training import add_train_arguments, train_config_from_args


def register(sub: Any) -> None:
    """Add ``emolens train`` to the subcommands."""
    p = sub.add_parser("train", help="train an emotion model", description="Train a registered model architecture.")
    add_train_arguments(p)  # every option of TrainConfig, generated from its fields
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument(
        "--stop-after", type=positive_int, metavar="N", help="stop this invocation after N epochs (resume later)"
    )
    p.set_defaults(func=run)


def _without_session_flags(argv: Sequence[str]) -> list[str]:
    """``emolens train`` arguments minus ``--resume`` and ``--stop-after N``, which split a run across
    invocations without changing its result: what a model card should give as the command."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg == "--stop-after":
            skip_value = True
        elif arg != "--resume" and not arg.startswith("--stop-after="):
            kept.append(arg)
    return kept


def run(args: argparse.Namespace) -> int:
    from ..training import train

    command = "emolens " + " ".join(shlex.quote(a) for a in _without_session_flags(args.argv))
    cfg = train_config_from_args(args, command=command)
    result = train(cfg, resume=args.resume, stop_after=args.stop_after)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 reports
        return 0
    print(
        f"best val {result.selected_by} accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
        f"weights: {result.weights_path}"
    )
    return 0
