"""``TrainConfig``: every setting of a training run, each default written once.

Each field carries its command-line flag and help in its metadata; ``emolens train``'s options are
generated from them (:func:`add_train_arguments`), read back into a config
(:func:`train_config_from_args`), and turned into the command that reproduces a config
(:func:`train_command`). This module imports neither torch nor numpy, so ``emolens --help`` stays fast.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .._argtypes import json_object, non_negative, positive_int, positive_number, unit_interval
from .._registry import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from ..errors import InvalidOptionError, UnknownNameError

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "SCHEDULES",
    "SELECT_MODES",
    "TARGET_MODES",
    "TrainConfig",
    "add_train_arguments",
    "train_command",
    "train_config_from_args",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine")
#: Peak learning rate and weight decay per optimizer, when a config gives none (AdamW's decay is
#: decoupled from the gradient, so it is two orders of magnitude larger than SGD's L2 penalty).
DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}
#: What a model learns (see :mod:`emolens.training._targets`).
TARGET_MODES: tuple[str, ...] = ("original", "majority", "distribution", "mixed")
#: Which val accuracy picks the best epoch.
SELECT_MODES = ("auto", "original", "consensus")


def _cli(flag: str, help: str = "", **argparse_options: Any) -> dict[str, Any]:
    return {"cli": {"flag": flag, "help": help, **argparse_options}}


def _option(default: Any, flag: str, help: str = "", **argparse_options: Any) -> Any:
    """A field with an immutable default and its command-line option."""
    return field(default=default, metadata=_cli(flag, help, **argparse_options))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and the model card)."""

    train_data: str = field(metadata=_cli("train", "training data: image folder (<emotion>/*.jpg) or FER2013 CSV"))
    val_data: str = field(metadata=_cli("val", "validation data used to select the best epoch"))
    out_dir: str = field(metadata=_cli("--out", "run folder: checkpoint, logs, best weights", required=True))
    model: str = _option("default", "--model", "registered model whose architecture to train")
    model_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_cli(
            "--model-options",
            "override architecture options, e.g. '{\"widths\": [32, 64, 128, 256, 512]}'",
            type=json_object,
            metavar="JSON",
        ),
    )
    input_size: int | None = _option(
        None,
        "--input-size",
        "train at this input size (pixels per side) instead of the model's: images are resized to it, and "
        "--init leaves tensors whose shape depends on it untrained",
        type=positive_int,
        metavar="PIXELS",
    )
    epochs: int = _option(40, "--epochs", type=positive_int)
    batch_size: int = _option(64, "--batch-size", type=positive_int)
    optimizer: str = _option("sgd", "--optimizer", "Nesterov SGD or AdamW", choices=OPTIMIZERS)
    schedule: str = _option(
        "onecycle",
        "--schedule",
        "per-step learning-rate schedule: OneCycle, or cosine after a warm-up",
        choices=SCHEDULES,
    )
    lr: float | None = _option(
        None,
        "--lr",
        "peak learning rate (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")",
        type=positive_number,
    )
    momentum: float = _option(0.9, "--momentum", "SGD momentum, AdamW's first beta", type=unit_interval)
    weight_decay: float | None = _option(
        None,
        "--weight-decay",
        "default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_WEIGHT_DECAY.items()) + " (decoupled)",
        type=non_negative,
    )
    label_smoothing: float = _option(0.1, "--label-smoothing", type=unit_interval)
    augment_strength: float = _option(1.0, "--augment", "augmentation strength (0 disables)", type=non_negative)
    erase_p: float = _option(0.5, "--erase", "random-erasing probability", type=unit_interval)
    mixup: float = _option(0.0, "--mixup", "mixup Beta(a, a) parameter (0 disables)", type=non_negative)
    cutmix: float = _option(
        0.0,
        "--cutmix",
        "CutMix Beta(a, a) parameter (0 disables; with --mixup too, each step uses one of the two at random)",
        type=non_negative,
    )
    ema_decay: float = _option(0.999, "--ema", "weight EMA decay", type=unit_interval)
    balanced: bool = _option(False, "--balanced", "class-balanced sampling", action="store_true")
    teachers: tuple[str, ...] = _option(
        (),
        "--teacher",
        "distil from a registered model, an exported model card (.json) or a run folder (repeat for an ensemble)",
        action="append",
        metavar="MODEL_OR_RUN",
    )
    teacher_tta: bool = _option(
        False,
        "--teacher-tta",
        "teachers whose model ships with flip TTA average their logits on each batch and its mirror image",
        action="store_true",
    )
    distill_weight: float = _option(0.5, "--distill-weight", "weight of the distillation loss", type=unit_interval)
    distill_temperature: float = _option(
        2.0, "--distill-temperature", "softening temperature for distillation", type=positive_number
    )
    targets: str = _option(
        "original",
        "--targets",
        "learn the FER2013 label, the FER+ majority, the FER+ vote distribution, or a mix",
        choices=TARGET_MODES,
    )
    original_weight: float = _option(
        0.5, "--original-weight", "share of the original label in --targets mixed", type=unit_interval
    )
    min_emotion_share: float = _option(
        0.5,
        "--min-emotion-share",
        "FER+ targets: leave out images with a smaller share of votes naming an emotion",
        type=unit_interval,
    )
    ferplus_train: str | None = _option(
        None, "--ferplus-train", "FER+ vote table of the training data (default: found beside it)", metavar="CSV"
    )
    ferplus_val: str | None = _option(None, "--ferplus-val", "FER+ vote table of the validation data", metavar="CSV")
    logit_adjustment: float = _option(
        0.0,
        "--logit-adjustment",
        "train on logits + TAU * log(class prior): counters the lean towards frequent classes",
        type=float,
        metavar="TAU",
    )
    select: str = _option(
        "auto",
        "--select",
        "val accuracy that picks the best epoch (auto: consensus for FER+ targets)",
        choices=SELECT_MODES,
    )
    init: str | None = _option(
        None, "--init", "start from these weights: a model, card or run folder", metavar="MODEL_OR_RUN"
    )
    limit: int | None = _option(None, "--limit", "train on a random subset of this many images", type=positive_int)
    skip_unreadable: bool = _option(
        True,
        "--strict-data",
        "stop at the first unreadable image or malformed CSV row (default: skip and count them)",
        action="store_false",
    )
    seed: int = _option(0, "--seed", type=int)
    amp: bool = _option(
        True,
        "--no-amp",
        "train in float32 instead of bf16 autocast (bf16 only where the CPU has it)",
        action="store_false",
    )
    device: str = _option("cpu", "--device", "cpu or cuda")
    threads: int | None = _option(None, "--threads", "torch CPU threads", type=positive_int)
    command: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Reject unknown names early; fill in the defaults that suit the optimizer."""
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise UnknownNameError("schedule", self.schedule, SCHEDULES)
        if self.targets not in TARGET_MODES:
            raise UnknownNameError("target mode", self.targets, TARGET_MODES)
        if self.select not in SELECT_MODES:
            raise UnknownNameError("selection metric", self.select, SELECT_MODES)
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])
        if self.input_size is not None and not MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE:
            raise InvalidOptionError(
                f"--input-size must be from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} pixels, got {self.input_size}",
                option="input-size",
            )
        for f, options in _options():  # the command line's bounds, for Python callers too
            relation, value = _BOUNDS.get(options.get("type")), getattr(self, f.name)
            if relation is None or value is None:
                continue
            try:
                options["type"](str(value))
            except argparse.ArgumentTypeError:
                flag = options["flag"]
                raise InvalidOptionError(
                    f"{flag} must be a finite number, {relation}; got {value}", option=flag[2:]
                ) from None
        if self.teacher_tta and not self.teachers:
            raise InvalidOptionError("--teacher-tta needs at least one --teacher", option="teacher-tta")
        object.__setattr__(self, "teachers", tuple(self.teachers))


#: Argument types whose bound ``TrainConfig`` checks for Python callers too, with how its message words it.
_BOUNDS: dict[Any, str] = {non_negative: "0 or more (0: off)", positive_number: "more than 0"}


def _options() -> list[tuple[Field[Any], dict[str, Any]]]:
    return [(f, dict(f.metadata["cli"])) for f in fields(TrainConfig) if "cli" in f.metadata]


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every TrainConfig option to ``parser`` (positionals, then flags), with the config's defaults."""
    for f, options in _options():
        flag, help_text = options.pop("flag"), options.pop("help")
        if not flag.startswith("--"):
            parser.add_argument(f.name, metavar=flag, help=help_text)
            continue
        default = _default(f)
        action = options.get("action")
        if action == "append":
            options["default"] = []
        elif action is None and not options.get("required"):
            options["default"] = default
            if default not in (None, {}, ()) and "default:" not in help_text:
                help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
        if action is None and "choices" not in options:
            options.setdefault("metavar", flag.removeprefix("--").upper().replace("-", "_"))
        parser.add_argument(flag, dest=f.name, help=help_text or None, **options)


def train_config_from_args(args: argparse.Namespace, *, command: str = "") -> TrainConfig:
    """The config of parsed ``emolens train`` arguments."""
    values = {f.name: getattr(args, f.name) for f, _ in _options()}
    values["teachers"] = tuple(values["teachers"])
    return TrainConfig(**values, command=command)


def train_command(config: TrainConfig) -> str:
    """The ``emolens train`` command that trains ``config`` (options at their default are left out)."""
    defaults = TrainConfig(config.train_data, config.val_data, config.out_dir)
    parts = ["emolens", "train"]
    flags: list[str] = []
    for f, options in _options():
        flag, value = options["flag"], getattr(config, f.name)
        if not flag.startswith("--"):
            parts.append(str(value))
        elif f.name == "out_dir":
            flags += [flag, str(value)]
        elif value == getattr(defaults, f.name):
            continue
        elif options.get("action") in ("store_true", "store_false"):
            flags.append(flag)
        elif options.get("action") == "append":
            for item in value:
                flags += [flag, str(item)]
        elif isinstance(value, dict):
            import json

            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return " ".join(shlex.quote(part) for part in [*parts, *flags])
