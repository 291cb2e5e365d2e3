"""``emolens recipe``: the GPU recipe."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``emolens recipe`` to the subcommands."""
    p = sub.add_parser(
        "recipe",
        help="train the consensus models: a teacher on FER+ votes, then distilled default and fast (for a GPU)",
        description="Run the consensus recipe (emolens.training._recipe): each stage is an `emolens train` run "
        "in <out>/runs/<stage>, exported to <out> with its model card.",
    )
    p.add_argument("train", help="training data with FER+ votes (image folder with ../ferplus/<split>.csv)")
    p.add_argument("val", help="validation data with FER+ votes")
    p.add_argument("--out", required=True, help="folder for the exported models and the run folders")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--mini", action="store_true", help="a few hundred images, one epoch per stage: a smoke test")
    p.add_argument("--resume", action="store_true", help="continue interrupted stages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training._recipe import run_recipe

    cards = run_recipe(args.train, args.val, args.out, device=args.device, mini=args.mini, resume=args.resume)
    for card in cards:
        default = card["metrics"]["val_tta" if card["default_tta"] else "val"]
        consensus = default.get("consensus", {}).get("accuracy", float("nan"))
        print(f"{card['name']}: val consensus {consensus:.4f}, original {default['accuracy']:.4f}")
    return 0
