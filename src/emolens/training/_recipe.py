"""The consensus recipe: train a teacher on the FER+ votes, distil the shipped students, export all three.

One command (``emolens recipe``) for a machine with a GPU, where the whole recipe takes minutes:
the teacher (the ``large`` architecture) is fine-tuned from emolens' FER2013 model on the crowd's
votes, then ``default`` and ``fast`` are fine-tuned from theirs with the teacher's probabilities as
an extra target, and each result is exported (weights + model card, float16 for the teacher so
every file stays under 16 MiB). ``mini=True`` runs the same stages on a few hundred images for one
epoch: how the recipe is tested on a CPU.

Every stage is an ordinary ``emolens train`` run in ``<out>/runs/<stage>``, resumable, with its
command recorded in the exported card.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config import TrainConfig, train_command
from ._export import export_run
from ._loop import train

__all__ = ["RECIPE_STAGES", "RecipeStage", "run_recipe"]


@dataclass(frozen=True)
class RecipeStage:
    """One training run of the recipe: which model to train, from what, on which targets, for how long."""

    name: str  # exported as emolens-<name>
    model: str  # registered architecture (and --init weights) to start from
    epochs: int
    options: dict[str, Any]  # further TrainConfig fields
    teacher: bool = False  # distil from the recipe's teacher stage
    half: bool = False  # export float16 weights
    prior_shift: float = 0.0  # emolens export --prior-shift


# What moved the consensus/CK+ trade-off on the CPU (docs/training.md): the vote distributions with
# logit adjustment, weight EMA, distillation from the large model, and at export the largest prior
# shift that kept CK+ accuracy above the FER2013 predecessor's. Longer runs may want other shifts:
# check each exported card with `emolens evaluate ../shared/datasets/ckplus48 --model CARD`.
_TARGETS: dict[str, Any] = {
    "targets": "distribution",
    "logit_adjustment": 1.0,
    "ema_decay": 0.995,
    "label_smoothing": 0.0,
    "lr": 0.01,
}

RECIPE_STAGES: tuple[RecipeStage, ...] = (
    RecipeStage("consensus-large", "large", 30, _TARGETS, half=True, prior_shift=0.55),
    RecipeStage("consensus-default", "default", 30, _TARGETS, teacher=True, prior_shift=0.4),
    RecipeStage("consensus-fast", "fast", 30, _TARGETS, teacher=True, prior_shift=0.2),
)


def run_recipe(
    train_data: str,
    val_data: str,
    out: str | Path,
    *,
    device: str = "cuda",
    mini: bool = False,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every stage of :data:`RECIPE_STAGES` and export each into ``out``; returns the model cards."""
    out = Path(out)
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    cards = []
    teacher_run: Path | None = None
    for stage in RECIPE_STAGES:
        run_dir = out / "runs" / stage.name
        options: dict[str, Any] = dict(stage.options)
        if mini:  # a few hundred images, one epoch: the whole recipe in a couple of minutes on a CPU
            options |= {"limit": 320, "batch_size": 32, "ema_decay": 0.5}
        teachers = (str(teacher_run),) if stage.teacher and teacher_run is not None else ()
        cfg = TrainConfig(
            train_data=train_data,
            val_data=val_data,
            out_dir=str(run_dir),
            model=stage.model,
            init=stage.model,
            epochs=1 if mini else stage.epochs,
            device=device,
            teachers=teachers,
            **options,
        )
        cfg = dataclasses.replace(cfg, command=_command(cfg))
        started = time.perf_counter()
        result = train(cfg, resume=resume)
        say(
            f"{stage.name}: best val {result.selected_by} accuracy {result.best_val_accuracy:.4f} "
            f"at epoch {result.best_epoch} ({time.perf_counter() - started:.0f} s)"
        )
        name = f"emolens-{stage.name}"
        note = "Trained by `emolens recipe`."
        cards.append(export_run(run_dir, out, name, half=stage.half, note=note, prior_shift=stage.prior_shift))
        say(f"exported {out / name}.safetensors")
        if teacher_run is None:
            teacher_run = run_dir
    return cards


def _command(cfg: TrainConfig) -> str:
    """The `emolens train` command that trains this stage on its own."""
    return train_command(cfg)
