"""The training loop: SGD + OneCycle (or AdamW, cosine), label smoothing, batched augmentation,
weight EMA, bf16, DDP, and optional distillation from trained teachers.

Targets are soft: one-hot FER2013 labels, or FER+ crowd votes (see ``_targets``); the loss is the
cross-entropy against them, optionally with the logits shifted by the log class prior during
training (logit adjustment, Menon et al. 2021), which counters a lean towards frequent classes.

Every epoch ends with an atomic checkpoint (model, EMA, optimizer, scheduler), and each epoch's
randomness is derived from (seed, epoch, process), so ``resume=True`` continues the same schedule
exactly, and a killed run loses at most one epoch.
The EMA weights are evaluated on the validation set each epoch; the best ones are exported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .._registry import ModelSpec
from ..errors import DatasetError, WeightsError
from ..labels import LabelSet
from ..models import (
    EmotionModel,
    RunFolder,
    autocast_for,
    build_model,
    build_partial,
    normalize,
    run_spec,
    save_state,
)
from ._augment import augment, cutmix, mixup, random_erase
from ._config import TrainConfig
from ._data import AUTO, FaceDataset, load_dataset
from ._distill import Teachers, distillation_loss
from ._evaluate import evaluate_dataset
from ._optim import build_optimizer, build_schedule
from ._preflight import check_before_training
from ._run_state import check_resumable, save_checkpoint, write_logs, write_run_config
from ._spec import source_weights
from ._targets import build_targets

__all__ = ["TrainConfig", "TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    best_epoch: int
    best_val_accuracy: float
    weights_path: Path
    history: list[dict[str, float]]
    seconds: float
    selected_by: str = "original"  # which val accuracy best_val_accuracy is


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(message: str, *, last: bool) -> None:
    """A progress line that rewrites itself on a terminal; on a log file, every call is a new line."""
    if sys.stderr.isatty():
        print("\r\033[K" + message, end="\n" if last else "", file=sys.stderr, flush=True)
    else:
        _log(message)


def _class_weights(targets: np.ndarray) -> torch.Tensor:
    """Inverse frequency of each row's top target class (rows of ``targets`` are (N, K) soft labels)."""
    counts = np.bincount(targets.argmax(1), minlength=targets.shape[1]).astype(np.float64)
    return torch.as_tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)


def _epoch_order(targets: np.ndarray, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Indices for one epoch: a permutation, or class-balanced sampling with replacement."""
    if cfg.balanced:
        weights = _class_weights(targets)[torch.from_numpy(targets.argmax(1))]
        return torch.multinomial(weights, len(targets), replacement=True, generator=gen)
    return torch.randperm(len(targets), generator=gen)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy against (N, K) target distributions, smoothed towards uniform."""
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / targets.shape[1]
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def selection_metric(cfg: TrainConfig, val: FaceDataset) -> str:
    """Which val accuracy picks the best epoch: consensus for FER+ targets when val has votes."""
    if cfg.select != "auto":
        return cfg.select
    return "consensus" if cfg.targets != "original" and val.votes is not None else "original"


def _train_batch(images: np.ndarray, cfg: TrainConfig, spec: ModelSpec, gen: torch.Generator) -> torch.Tensor:
    """An augmented, normalised training batch: the model's preprocessing with augmentation before normalising."""
    batch = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
    batch = normalize(augment(batch, gen, cfg.augment_strength), spec.input)
    if cfg.erase_p > 0:
        batch = random_erase(batch, gen, p=cfg.erase_p)
    return batch.contiguous(memory_format=torch.channels_last)


def _limited(data: FaceDataset, limit: int | None, seed: int) -> FaceDataset:
    if limit is None or limit >= len(data):
        return data
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(len(data), size=limit, replace=False)))


def _seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (seed, epoch, rank ...)."""
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun with several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@dataclass
class _Data:
    """What one run trains and selects on."""

    spec: ModelSpec
    train: FaceDataset
    targets: np.ndarray  # (N, K) soft targets, rows in train's order
    val: FaceDataset
    select: str  # "original" or "consensus": which val accuracy picks the best epoch
    log_prior: torch.Tensor  # log of the mean training target (logit adjustment)
    steps_per_epoch: int


@dataclass
class _Run:
    """The network, its EMA, the optimizer and schedule, the teachers, and the run's record so far."""

    network: nn.Module
    model: nn.Module  # the network, or its DistributedDataParallel wrapper
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    teachers: Teachers | None
    device: torch.device
    history: list[dict[str, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    first_epoch: int = 0
    elapsed_before: float = 0.0


def train(cfg: TrainConfig, *, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    r"""Train ``cfg.model``'s architecture on ``cfg.train_data``, selecting epochs on ``cfg.val_data``.

    ``resume`` continues from the run folder's checkpoint; ``stop_after`` ends this invocation after
    that many epochs (to fit a time budget), leaving a checkpoint to resume from. A folder that holds a run is
    refused (InvalidOptionError) unless ``resume``, and so are a device, options or vote tables that could not
    work, before any data is read.

    Under ``torchrun --nproc_per_node N`` every process trains on its share of each epoch with
    ``cfg.batch_size`` images per step (gradients are averaged by DistributedDataParallel); process 0
    evaluates, logs and writes the checkpoints. All randomness of an epoch is derived from
    (seed, epoch, process), so a resumed run repeats exactly without storing generator states.

    The steps, in order: :func:`_setup` (data and targets), :func:`_build` (network, EMA, optimizer,
    schedule), :func:`_resume`, then per epoch :func:`_train_epoch` (of :func:`_train_step`\ s),
    :func:`_evaluate` and :func:`_checkpoint`.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = _init_distributed()
    folder = RunFolder(cfg.out_dir)
    check_before_training(cfg, folder, resume=resume)  # before minutes of data loading
    folder.path.mkdir(parents=True, exist_ok=True)
    resuming = resume and folder.checkpoint_file.exists()
    if resuming and not folder.config_file.is_file():
        raise WeightsError(
            f"{folder.path} has a checkpoint but no {folder.CONFIG}, which says which network the run trains "
            "(architecture, labels, input size); restore it, or start a new run in another --out folder",
            filename=folder.CONFIG,
        )
    data = _setup(cfg, folder, rank, world, resume=resuming)
    run = _build(cfg, data, rank, world)
    fingerprint = data.train.fingerprint()
    if resuming:
        _resume(run, cfg, folder, world, fingerprint, rank)

    session_start = time.perf_counter()
    for epoch in range(run.first_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        loss, accuracy = _train_epoch(run, cfg, data, epoch, rank, world)
        if rank == 0:
            _evaluate(run, data, folder, epoch, loss, accuracy, time.perf_counter() - epoch_start)
            elapsed = run.elapsed_before + time.perf_counter() - session_start
            _checkpoint(run, cfg, folder, world, epoch, elapsed, fingerprint)
        if world > 1:
            dist.barrier()
        if stop_after is not None and epoch + 1 - run.first_epoch >= stop_after:
            break
    if world > 1:
        dist.destroy_process_group()
    elapsed = run.elapsed_before + time.perf_counter() - session_start
    return TrainResult(run.best_epoch, run.best_acc, folder.best_weights, run.history, elapsed, data.select)


def _setup(cfg: TrainConfig, folder: RunFolder, rank: int, world: int, *, resume: bool) -> _Data:
    """Read the data, turn labels or votes into targets, and write the run's config (process 0).

    A resumed run keeps the network it started with (:meth:`RunFolder.with_pinned`), whatever the registry says now.
    """
    spec = run_spec(folder.with_pinned(asdict(cfg)) if resume else asdict(cfg))
    # Votes are read for training only when the targets use them, so a model trained on the original
    # labels keeps the data fingerprint it always had.
    train_votes = None if cfg.targets == "original" else cfg.ferplus_train or AUTO
    loaded = load_dataset(
        cfg.train_data, "train", size=spec.input_size, skip_unreadable=cfg.skip_unreadable, ferplus=train_votes
    )
    if loaded.classes != spec.labels:  # your own labels (or a label subset): the network outputs the data's classes
        spec = dataclasses.replace(spec, labels=loaded.classes)
    if rank == 0:
        write_run_config(folder, cfg, spec)
    all_targets, keep = build_targets(
        loaded,
        cfg.targets,
        LabelSet(spec.name, spec.labels),
        original_weight=cfg.original_weight,
        min_emotion_share=cfg.min_emotion_share,
    )
    kept = np.flatnonzero(keep)
    train_data = _limited(loaded.subset(kept), cfg.limit, cfg.seed)
    targets_of = {source: row for source, row in zip(loaded.sources, all_targets, strict=True)}
    train_targets = np.stack([targets_of[source] for source in train_data.sources])
    val_data = load_dataset(
        cfg.val_data, "val", size=spec.input_size, skip_unreadable=cfg.skip_unreadable, ferplus=cfg.ferplus_val or AUTO
    )
    select = selection_metric(cfg, val_data)
    if rank == 0:
        if train_data.skipped or val_data.skipped:
            _log(f"skipped unreadable images: train {train_data.skipped}, val {val_data.skipped}")
        if len(kept) < len(loaded):
            _log(
                f"targets {cfg.targets}: training on {len(kept)} of {len(loaded)} images "
                "(the rest have no usable votes)"
            )
        _log(f"val: {val_data.vote_summary()}; best epoch chosen by {select} accuracy")
    log_prior = torch.log(torch.as_tensor(train_targets.mean(0), dtype=torch.float32).clamp_min(1e-6))
    steps_per_epoch = len(train_data) // (cfg.batch_size * world)
    if steps_per_epoch == 0:
        raise DatasetError(f"{len(train_data)} training images is fewer than one batch of {cfg.batch_size}")
    return _Data(spec, train_data, train_targets, val_data, select, log_prior, steps_per_epoch)


def _build(cfg: TrainConfig, data: _Data, rank: int, world: int) -> _Run:
    """The network (from ``--init`` when given), its EMA, the optimizer, the schedule and the teachers."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(cfg.seed)
    if cfg.init:
        network, skipped = build_partial(data.spec, source_weights(cfg.init))
        if rank == 0 and skipped:
            _log(f"--init {cfg.init}: {len(skipped)} tensor(s) of another shape left untrained ({', '.join(skipped)})")
    else:
        network = build_model(data.spec)
    network = network.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema_fn = get_ema_multi_avg_fn(cfg.ema_decay)  # type: ignore[no-untyped-call]
    ema = AveragedModel(network, multi_avg_fn=ema_fn, use_buffers=True)
    assert cfg.lr is not None and cfg.weight_decay is not None  # filled in by TrainConfig.__post_init__
    optimizer = build_optimizer(
        cfg.optimizer, network.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scheduler = build_schedule(cfg.schedule, optimizer, lr=cfg.lr, total_steps=cfg.epochs * data.steps_per_epoch)
    teachers = None
    if cfg.teachers:
        teachers = Teachers(cfg.teachers, device, amp=cfg.amp, student_input=data.spec.input, tta=cfg.teacher_tta)
    model: nn.Module = network
    if world > 1:
        model = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
    return _Run(network, model, ema, optimizer, scheduler, teachers, device)


def _resume(run: _Run, cfg: TrainConfig, folder: RunFolder, world: int, fingerprint: str, rank: int) -> None:
    """Continue from the checkpoint: weights, EMA, optimizer, schedule and the record so far."""
    state = folder.checkpoint(map_location=run.device)
    check_resumable(state, cfg, world, fingerprint, folder.checkpoint_file, run.teachers)
    run.network.load_state_dict(state["network"])
    run.ema.load_state_dict(state["ema"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.history, run.best_acc, run.best_epoch = state["history"], state["best_acc"], state["best_epoch"]
    run.first_epoch, run.elapsed_before = state["epoch"], state["elapsed"]
    if rank == 0:
        _log(f"resumed from {folder.checkpoint_file} after epoch {run.first_epoch}")


def _train_epoch(run: _Run, cfg: TrainConfig, data: _Data, epoch: int, rank: int, world: int) -> tuple[float, float]:
    """One pass over this process's share of the data; returns its mean loss and accuracy."""
    epoch_start = time.perf_counter()
    run.model.train()
    order = _epoch_order(data.targets, cfg, torch.Generator().manual_seed(_seed(cfg.seed, epoch)))[rank::world]
    gen = torch.Generator().manual_seed(_seed(cfg.seed, epoch, rank))
    torch.manual_seed(_seed(cfg.seed, epoch, rank, 1))  # dropout, mixup
    total_loss = torch.zeros((), device=run.device)
    correct = torch.zeros((), dtype=torch.long, device=run.device)
    seen = 0
    progress_every = 5 if sys.stderr.isatty() else 100  # steps between progress lines
    for step in range(data.steps_per_epoch):
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size].numpy()
        batch = _train_batch(data.train.images[idx], cfg, data.spec, gen).to(run.device)
        targets = torch.from_numpy(data.targets[idx]).to(run.device)
        loss, logits = _train_step(run, cfg, data, batch, targets, gen)
        total_loss += loss.detach() * len(targets)
        correct += (logits.argmax(1) == targets.argmax(1)).sum()
        seen += len(targets)
        last = step + 1 == data.steps_per_epoch
        if rank == 0 and (last or (step + 1) % progress_every == 0):
            rate = (step + 1) / (time.perf_counter() - epoch_start)
            remaining = (data.steps_per_epoch - step - 1) + (cfg.epochs - epoch - 1) * data.steps_per_epoch
            _progress(
                f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{data.steps_per_epoch} "
                f"loss {float(total_loss) / seen:.4f} acc {int(correct) / seen:.4f} "
                f"lr {run.scheduler.get_last_lr()[0]:.4g} eta {remaining / rate / 60:.1f} min",
                last=last,
            )
    return float(total_loss) / seen, int(correct) / seen


def _train_step(
    run: _Run, cfg: TrainConfig, data: _Data, batch: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step: mixup or CutMix, forward, (logit-adjusted) loss plus distillation, backward, EMA."""
    batch, targets = _mix(cfg, batch, targets, gen)
    with autocast_for(run.device, cfg.amp):
        logits = run.model(batch)
    logits = logits.float()
    adjusted = logits + cfg.logit_adjustment * data.log_prior.to(run.device) if cfg.logit_adjustment else logits
    loss = soft_cross_entropy(adjusted, targets, cfg.label_smoothing)
    if run.teachers is not None:
        soft = run.teachers.probabilities(batch, cfg.distill_temperature)
        distill = distillation_loss(logits, soft, cfg.distill_temperature)
        loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * distill
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    run.optimizer.step()
    run.scheduler.step()
    run.ema.update_parameters(run.network)
    return loss, logits


def _mix(
    cfg: TrainConfig, batch: torch.Tensor, targets: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch after mixup or CutMix, as configured; with both, one of them, chosen per step."""
    mixers = [(alpha, mixer) for alpha, mixer in ((cfg.mixup, mixup), (cfg.cutmix, cutmix)) if alpha > 0]
    if not mixers:
        return batch, targets
    pick = int(torch.randint(len(mixers), (1,), generator=gen)) if len(mixers) > 1 else 0
    alpha, mixer = mixers[pick]
    return mixer(batch, targets, alpha, gen)


def _evaluate(
    run: _Run, data: _Data, folder: RunFolder, epoch: int, loss: float, accuracy: float, seconds: float
) -> None:
    """Measure the EMA weights on val, keep them when they are the best so far, and log the epoch."""
    val = evaluate_dataset(EmotionModel.from_network(data.spec, run.ema.module, tta=False), data.val)
    row = {
        "epoch": epoch + 1,
        "train_loss": loss,
        "train_acc": accuracy,
        "val_acc": val.accuracy,
        "val_nll": val.nll,
        "lr": float(run.scheduler.get_last_lr()[0]),
        "seconds": seconds,
    }
    if val.consensus is not None and val.votes is not None:
        row |= {
            "val_consensus_acc": val.consensus.accuracy,
            "val_consensus_mean_recall": val.consensus.mean_recall,
            "val_vote_kl": val.votes.kl,
        }
    run.history.append(row)
    metric = val.consensus.accuracy if data.select == "consensus" and val.consensus else val.accuracy
    if metric > run.best_acc:
        run.best_acc, run.best_epoch = metric, epoch + 1
        save_state(run.ema.module, folder.best_weights)
    consensus = f" consensus {row['val_consensus_acc']:.4f}" if "val_consensus_acc" in row else ""
    _log(
        f"epoch {epoch + 1}: train acc {row['train_acc']:.4f} val acc {val.accuracy:.4f}{consensus} "
        f"(best {data.select} {run.best_acc:.4f} @ {run.best_epoch}) {row['seconds']:.0f}s"
    )
    write_logs(folder, run.history)


def _checkpoint(
    run: _Run, cfg: TrainConfig, folder: RunFolder, world: int, epoch: int, elapsed: float, fingerprint: str
) -> None:
    """Everything needed to resume after this epoch, written atomically."""
    save_checkpoint(
        folder,
        {
            "config": asdict(cfg),
            "world": world,
            "network": run.network.state_dict(),
            "ema": run.ema.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "history": run.history,
            "best_acc": run.best_acc,
            "best_epoch": run.best_epoch,
            "epoch": epoch + 1,
            "elapsed": elapsed,
            "train_fingerprint": fingerprint,
            "teacher_weights": list(run.teachers.weights_sha256) if run.teachers is not None else [],
            "teacher_tensors": list(run.teachers.tensors_sha256) if run.teachers is not None else [],
        },
    )
