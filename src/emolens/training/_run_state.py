"""What a training run writes into its run folder besides weights: its config, the epoch log and the
checkpoint, and the check that a checkpoint may be resumed with the options given now.

File names live in :class:`emolens.models.RunFolder`, the one reader of run folders.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._registry import ModelSpec
from ..errors import DatasetError, InvalidOptionError
from ..models import RunFolder, pinned_entries
from ._config import TrainConfig

if TYPE_CHECKING:
    from ._distill import Teachers

__all__ = ["check_resumable", "save_checkpoint", "write_logs", "write_run_config"]


def write_run_config(folder: RunFolder, cfg: TrainConfig, spec: ModelSpec) -> None:
    """``config.json``: the run's options plus the architecture (name, options), labels and input size it trained."""
    partial = folder.config_file.with_suffix(".json.tmp")  # atomic: other processes may be reading it
    partial.write_text(json.dumps({**asdict(cfg), **pinned_entries(spec)}, indent=2, ensure_ascii=False))
    os.replace(partial, folder.config_file)


def save_checkpoint(folder: RunFolder, state: dict[str, Any]) -> None:
    """Write the checkpoint atomically: a run killed while saving keeps the previous one."""
    partial = folder.checkpoint_file.with_suffix(".pt.tmp")
    torch.save(state, partial)
    os.replace(partial, folder.checkpoint_file)


def write_logs(folder: RunFolder, history: list[dict[str, float]]) -> None:
    """The epoch log as CSV (for spreadsheets) and JSON (read back by :meth:`RunFolder.epochs`)."""
    with folder.log_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    folder.log_json.write_text(json.dumps(history, indent=2))


def check_resumable(
    state: dict[str, Any],
    cfg: TrainConfig,
    world: int,
    fingerprint: str,
    path: Path,
    teachers: Teachers | None = None,
) -> None:
    """Refuse to continue a checkpoint with other options, another process count, other training data or
    teachers whose tensors changed since it was written."""
    # options added after a checkpoint was written take their defaults
    saved = {**_comparable(TrainConfig(cfg.train_data, cfg.val_data, cfg.out_dir)), **_comparable(state["config"])}
    saved["processes"] = state.get("world", 1)
    current = {**_comparable(asdict(cfg)), "processes": world}
    changed = [f"{key} {saved.get(key)!r} (now {value!r})" for key, value in current.items() if saved.get(key) != value]
    if changed:
        raise InvalidOptionError(
            f"{path} was made with a different configuration: {'; '.join(changed)}. Resume with the same "
            "options, or start a new run in another --out folder",
            option="resume",
        )
    if teachers is not None:
        # Checkpoints record the tensors' digests; older ones the weights files' (absent: older still).
        key, now_all = (
            ("teacher_tensors", teachers.tensors_sha256)
            if "teacher_tensors" in state
            else ("teacher_weights", teachers.weights_sha256)
        )
        for source, before, now in zip(cfg.teachers, state.get(key, now_all), now_all, strict=False):
            if before != now:
                raise InvalidOptionError(
                    f"teacher {source!r} means other weights than when {path} was written ({before[:12]}, now "
                    f"{now[:12]}): resume with the same teacher (a pinned name such as large@v1, an exported card "
                    "or a run folder that is not trained further), or start a new run in another --out folder",
                    option="teacher",
                )
    if state.get("train_fingerprint", fingerprint) != fingerprint:
        raise DatasetError(
            f"the training data in {cfg.train_data} changed since {path} was written; restore it, or start a "
            "new run in another --out folder",
            path=path,
        )


def _comparable(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """The options that must match to resume a run (lists from JSON compared as tuples)."""
    items = asdict(config) if isinstance(config, TrainConfig) else config
    return {k: tuple(v) if isinstance(v, list) else v for k, v in items.items() if k not in ("command", "threads")}
