"""What :func:`~emolens.training.train` checks before it reads any data: settings that would fail only after
minutes of loading, and a run folder it would otherwise overwrite."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .._device import resolve_device
from ..errors import DatasetError, InvalidOptionError
from ..models import RunFolder, network_shape, run_spec
from ._config import TrainConfig

__all__ = ["check_before_training"]


def check_before_training(cfg: TrainConfig, folder: RunFolder, *, resume: bool) -> None:
    """InvalidOptionError (or DatasetError) for a device this machine lacks, architecture options the
    architecture refuses, vote tables that are missing or would be ignored, and a folder holding a run that
    this call would replace."""
    resolve_device(cfg.device)
    _check_folder(folder, resume=resume)
    resuming = resume and folder.checkpoint_file.is_file() and folder.config_file.is_file()
    network_shape(run_spec(folder.with_pinned(asdict(cfg)) if resuming else asdict(cfg)))
    _check_vote_tables(cfg)


def _check_folder(folder: RunFolder, *, resume: bool) -> None:
    """A second `emolens train` into a finished run replaced its weights and log silently."""
    earlier = [file.name for file in (folder.checkpoint_file, folder.best_weights) if file.is_file()]
    if earlier and not resume:
        raise InvalidOptionError(
            f"--out {folder.path} already holds a training run ({', '.join(earlier)}): resume it (--resume, "
            "resume=True), or choose another --out (delete the folder to start it again)",
            option="out",
        )
    if resume and folder.best_weights.is_file() and not folder.checkpoint_file.is_file():
        raise InvalidOptionError(
            f"--out {folder.path} holds {folder.BEST} but no {folder.checkpoint_file.name} to resume from; "
            "training would start again and replace it: choose another --out (or move the weights away)",
            option="out",
        )


def _check_vote_tables(cfg: TrainConfig) -> None:
    """Vote tables named explicitly must exist, and be used: one for the training data is read only for targets
    made from votes (with ``--targets original`` it was silently ignored)."""
    for option, table in (("--ferplus-train", cfg.ferplus_train), ("--ferplus-val", cfg.ferplus_val)):
        if table is not None and not Path(table).is_file():
            raise DatasetError(f"{option} {table}: no such file", path=table)
    if cfg.ferplus_train is not None and cfg.targets == "original":
        raise InvalidOptionError(
            "--ferplus-train is read only for targets made from the votes; with --targets original it would be "
            "ignored: leave it out, or choose --targets distribution (or majority, mixed)",
            option="--ferplus-train",
        )
