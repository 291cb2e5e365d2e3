"""``emolens recipe``: the consensus recipe, on a GPU or a CPU, resumable, with measured estimates."""

from __future__ import annotations

import argparse
from typing import Any

from .._argtypes import deadline, positive_int


def register(sub: Any) -> None:
    """Add ``emolens recipe`` to the subcommands."""
    p = sub.add_parser(
        "recipe",
        help="train the consensus models: a teacher on FER+ votes, then distilled default and fast (GPU or CPU)",
        description="Run the consensus recipe (emolens.training._recipe): each stage is an `emolens train` run "
        "in <out>/runs/<stage>, exported to <out> with its model card. Exported stages are skipped and "
        "interrupted ones continue from their last epoch; before each stage its time on this machine is "
        "measured and printed.",
    )
    p.add_argument("train", help="training data with FER+ votes (image folder with ../ferplus/<split>.csv)")
    p.add_argument("val", help="validation data with FER+ votes")
    p.add_argument("--out", required=True, help="folder for the exported models and the run folders")
    p.add_argument("--device", default="auto", help="cuda or cpu (default: cuda where torch has a GPU, else cpu)")
    p.add_argument(
        "--deadline",
        type=deadline,
        help="refuse (with the numbers) a stage that cannot finish before this: 90m, 2h, 1h30m or 17:45",
    )
    p.add_argument(
        "--stage",
        dest="stages",
        action="append",
        metavar="NAME",
        help="run only this stage (large, default, fast or their full names; repeat for several)",
    )
    p.add_argument(
        "--teacher",
        action="append",
        metavar="MODEL_OR_RUN",
        help="distil from this run folder, card or model instead of the recipe's teacher (repeat for an ensemble)",
    )
    p.add_argument("--epochs", type=positive_int, help="epochs of every stage (default: each stage's own)")
    p.add_argument("--mini", action="store_true", help="a few hundred images, one epoch per stage: a smoke test")
    p.add_argument(
        "--fresh",
        dest="resume",
        action="store_false",
        help="refuse to continue earlier runs in --out (default: resume)",
    )
    p.add_argument("--resume", dest="legacy_resume", action="store_true", help=argparse.SUPPRESS)  # now the default
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import run_recipe

    cards = run_recipe(
        args.train,
        args.val,
        args.out,
        device=args.device,
        mini=args.mini,
        resume=args.resume,
        deadline=args.deadline,
        stages=args.stages,
        teacher=args.teacher,
        epochs=args.epochs,
    )
    for card in cards:
        assert card.record is not None  # the recipe exports measured cards
        default = card.record.metrics.default(card.tta)
        consensus = default.consensus.accuracy if default.consensus else float("nan")
        print(f"{card.name}: val consensus {consensus:.4f}, original {default.accuracy:.4f}")
    return 0
