"""``emolens recipe``: the consensus recipe, on a GPU or a CPU, resumable, with measured estimates."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from typing import Any

from .._argtypes import positive_int


def deadline(text: str) -> float:
    """A deadline as ``time.time()``: a duration from now (``90m``, ``2h``, ``1h30m``) or a clock time (``17:45``)."""
    duration = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*", text)
    if duration and any(duration.groups()):
        hours, minutes = (float(g) if g else 0.0 for g in duration.groups())
        return time.time() + 3600 * hours + 60 * minutes
    clock = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if clock and int(clock[1]) < 24 and int(clock[2]) < 60:
        now = dt.datetime.now()
        at = now.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0)
        return (at if at > now else at + dt.timedelta(days=1)).timestamp()
    raise argparse.ArgumentTypeError(
        f"expected a duration such as 90m, 2h or 1h30m, or a time such as 17:45; got {text!r}"
    )


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
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
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
    p.add_argument("--teacher", metavar="MODEL_OR_RUN", help="distil from this run folder, card or model instead")
    p.add_argument("--epochs", type=positive_int, help="epochs of every stage (default: each stage's own)")
    p.add_argument("--mini", action="store_true", help="a few hundred images, one epoch per stage: a smoke test")
    p.add_argument(
        "--fresh",
        dest="resume",
        action="store_false",
        help="refuse to continue earlier runs in --out (default: resume)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training._recipe import run_recipe

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
        default = card["metrics"]["val_tta" if card["default_tta"] else "val"]
        consensus = default.get("consensus", {}).get("accuracy", float("nan"))
        print(f"{card['name']}: val consensus {consensus:.4f}, original {default['accuracy']:.4f}")
    return 0
