"""The consensus recipe: train a teacher on the FER+ votes, distil the shipped students, export all three.

One command (``emolens recipe``), on a GPU or a CPU: the teacher (``large@v2``'s VGG; ``large`` itself
is an ensemble since v3, built with ``python -m tools.ensemble``) is fine-tuned on the crowd's votes,
then ``default`` and ``fast`` are fine-tuned with the teacher's probabilities as an extra target, and
each result is exported (weights + model card, float16 for the teacher so every file stays under
16 MiB). ``mini=True`` runs the same stages on a few hundred
images for one epoch: how the recipe is tested on a CPU.

Every stage is an ordinary ``emolens train`` run in ``<out>/runs/<stage>``, so the recipe is
resumable per stage and per epoch: an exported stage is skipped, an interrupted one continues from
its last epoch. Before a stage starts, its time is estimated from a few measured training steps on
this machine (or from its own finished epochs when resuming) and printed; with a ``deadline``, a
stage that cannot finish before it is refused with those numbers, and nothing is started.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._device import resolve_device
from ..errors import InvalidOptionError, WeightsError
from ..models import ModelCard, RunFolder, run_spec
from ._config import TrainConfig, train_command
from ._export import export_run
from ._loop import train
from ._timing import measure_epoch_seconds

__all__ = ["RECIPE_STAGES", "RecipeStage", "StagePlan", "plan_stage", "run_recipe"]


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
    # large@v2's VGG at 64x64: since v3 `large` is an ensemble (python -m tools.ensemble), not one network to train
    RecipeStage("consensus-large", "large@v2", 30, _TARGETS, half=True, prior_shift=0.55),
    RecipeStage("consensus-default", "default", 30, _TARGETS, teacher=True, prior_shift=0.4),
    RecipeStage("consensus-fast", "fast", 30, _TARGETS, teacher=True, prior_shift=0.2),
)

#: Training images assumed by an estimate made before the data is read (FER2013 train with FER+ votes).
_ESTIMATE_TRAIN_IMAGES, _ESTIMATE_VAL_IMAGES = 25_340, 3_589


@dataclass(frozen=True)
class StagePlan:
    """What is left of a stage and how long it will take on this machine."""

    stage: str
    epochs_left: int
    seconds_per_epoch: float
    measured_from: str  # "finished epochs" or "timed steps"

    @property
    def seconds(self) -> float:
        return self.epochs_left * self.seconds_per_epoch

    def describe(self) -> str:
        return (
            f"{self.stage}: {self.epochs_left} epoch(s) left x {self.seconds_per_epoch / 60:.1f} min "
            f"(measured from {self.measured_from}) = about {self.seconds / 60:.0f} min"
        )


def plan_stage(cfg: TrainConfig, name: str, *, steps: int = 8) -> StagePlan:
    """The epochs a stage has left, and the seconds each takes here: from its own log when it has run, else timed."""
    done = RunFolder(cfg.out_dir).epochs()
    left = max(0, cfg.epochs - len(done))
    if done:
        seconds = statistics.median(row["seconds"] for row in done)
        return StagePlan(name, left, seconds, "finished epochs")
    train_images = min(_ESTIMATE_TRAIN_IMAGES, cfg.limit or _ESTIMATE_TRAIN_IMAGES)
    seconds = measure_epoch_seconds(cfg, train_images=train_images, val_images=_ESTIMATE_VAL_IMAGES, steps=steps)
    return StagePlan(name, left, seconds, f"{steps} timed steps")


def run_recipe(
    train_data: str,
    val_data: str,
    out: str | Path,
    *,
    device: str = "auto",
    mini: bool = False,
    resume: bool = True,
    deadline: float | None = None,
    stages: Sequence[str] | None = None,
    teacher: str | Sequence[str] | None = None,
    epochs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ModelCard]:
    """Run the stages of :data:`RECIPE_STAGES` and export each into ``out``; returns the exported cards.

    ``device``: ``"auto"`` (default) is CUDA where torch has a GPU, else the CPU. ``resume`` (default) skips
    exported stages and continues interrupted ones; ``resume=False`` refuses a stage whose run folder already
    holds a run (InvalidOptionError from :func:`~emolens.training.train`). ``deadline`` (a ``time.time()``
    value): a stage whose measured estimate ends after it is refused (:class:`InvalidOptionError`) before it
    starts. ``stages`` picks stages by name (``"consensus-default"`` or ``"default"``); ``teacher`` is a run
    folder, card or registered model to distil from instead of the recipe's own teacher stage, or several
    (an ensemble whose probabilities are averaged, as ``emolens train --teacher A --teacher B``); ``epochs``
    overrides every stage's epochs.
    """
    out = Path(out)
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolve_device(device)  # a CUDA device on a CPU machine: one line now, not an error inside the first stage
    chosen = _chosen(stages)
    cards = []
    teachers: tuple[str, ...] = (teacher,) if isinstance(teacher, str) else tuple(teacher or ())
    for stage in RECIPE_STAGES:
        run_dir = out / "runs" / stage.name
        if stage.teacher and not teachers:
            teachers = (str(out / "runs" / RECIPE_STAGES[0].name),)  # the recipe's own teacher, trained earlier
        if stage.name not in chosen:
            continue
        cfg = _stage_config(stage, train_data, val_data, run_dir, device, mini, epochs, teachers)
        name = f"emolens-{stage.name}"
        exported = out / f"{name}.json"
        if resume and _exported_from(exported, cfg):
            say(f"{stage.name}: already trained and exported ({exported}); skipped")
            continue
        _check_pinned_input(run_dir, cfg, stage.name)
        if not resume and RunFolder(run_dir).checkpoint_file.exists():
            raise InvalidOptionError(
                f"{run_dir} holds an earlier run of {stage.name}; resume it (the default) or give another --out",
                option="resume",
            )
        plan = plan_stage(cfg, stage.name)
        say(plan.describe())
        if deadline is not None and time.time() + plan.seconds > deadline:
            left = max(0.0, deadline - time.time())
            raise InvalidOptionError(
                f"stage {stage.name} needs about {plan.seconds / 60:.0f} min ({plan.epochs_left} epochs x "
                f"{plan.seconds_per_epoch / 60:.1f} min, measured from {plan.measured_from}) and {left / 60:.0f} min "
                "are left before the deadline: not started. Stages before it are exported; run again later "
                "(it resumes), or with a later deadline or fewer --epochs",
                option="deadline",
            )
        started = time.perf_counter()
        result = train(cfg, resume=resume)
        say(
            f"{stage.name}: best val {result.selected_by} accuracy {result.best_val_accuracy:.4f} "
            f"at epoch {result.best_epoch} ({time.perf_counter() - started:.0f} s)"
        )
        note = "Trained by `emolens recipe`."
        cards.append(export_run(run_dir, out, name, half=stage.half, note=note, prior_shift=stage.prior_shift))
        say(f"exported {out / name}.safetensors")
    return cards


def _exported_from(card_path: Path, cfg: TrainConfig) -> bool:
    """Whether ``card_path`` is this stage's export: same model, input size, epochs and training data (the run
    folder, often gone by the next session, is not needed). An export of ``large`` from before it read 64x64
    crops is not this stage's."""
    if not card_path.is_file():
        return False
    try:
        card = ModelCard.read(card_path)
    except WeightsError:
        return False
    if card.record is None:
        return False
    trained = card.record.training
    return (trained.model, card.input.size, trained.epochs, trained.train_data, trained.targets) == (
        cfg.model,
        run_spec(dataclasses.asdict(cfg)).input.size,
        cfg.epochs,
        cfg.train_data,
        cfg.targets,
    )


def _check_pinned_input(run_dir: Path, cfg: TrainConfig, stage: str) -> None:
    """Refuse a stage whose run folder is pinned to another input size than the stage trains (a ``large`` run
    from before it read 64x64 crops): resuming it would train and export the old size again."""
    folder = RunFolder(run_dir)
    if not folder.config_file.is_file():
        return
    wanted = run_spec(dataclasses.asdict(cfg)).input.size
    pinned = run_spec(folder.with_pinned(dataclasses.asdict(cfg))).input.size
    if pinned != wanted:
        raise InvalidOptionError(
            f"{run_dir} holds a run of {stage} at {pinned}x{pinned} pixels and this recipe trains it at "
            f"{wanted}x{wanted}: move that folder away (its export stays usable), or give another --out",
            option="resume",
        )


def _chosen(stages: Sequence[str] | None) -> set[str]:
    """Stage names from full names or model names; every stage when none are given."""
    names = {stage.name for stage in RECIPE_STAGES}
    if not stages:
        return names
    by_model = {stage.model.split("@")[0]: stage.name for stage in RECIPE_STAGES}
    chosen = {by_model.get(name, name) for name in stages}
    unknown = sorted(chosen - names)
    if unknown:
        raise InvalidOptionError(
            f"unknown recipe stage(s) {', '.join(unknown)}; the stages are {', '.join(sorted(names))}", option="stages"
        )
    return chosen


def _stage_config(
    stage: RecipeStage,
    train_data: str,
    val_data: str,
    run_dir: Path,
    device: str,
    mini: bool,
    epochs: int | None,
    teachers: tuple[str, ...],
) -> TrainConfig:
    options: dict[str, Any] = dict(stage.options)
    if mini:  # a few hundred images, one epoch: the whole recipe in a couple of minutes on a CPU
        options |= {"limit": 320, "batch_size": 32, "ema_decay": 0.5}
    cfg = TrainConfig(
        train_data=train_data,
        val_data=val_data,
        out_dir=str(run_dir),
        model=stage.model,
        init=stage.model,
        epochs=1 if mini else (epochs or stage.epochs),
        device=device,
        teachers=teachers if stage.teacher else (),
        **options,
    )
    return dataclasses.replace(cfg, command=train_command(cfg))
