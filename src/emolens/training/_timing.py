"""How long an epoch takes on this machine, measured before a long run starts (``emolens recipe`` prints it)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict

import numpy as np
import torch

from ..models import EmotionModel, run_spec
from ._config import TrainConfig
from ._data import FaceDataset
from ._evaluate import predict_dataset
from ._loop import _build, _Data, _train_batch, _train_step

__all__ = ["measure_epoch_seconds"]


def measure_epoch_seconds(cfg: TrainConfig, *, train_images: int, val_images: int, steps: int = 8) -> float:
    """Seconds one epoch of ``cfg`` takes on this machine, from a few timed steps on generated images.

    The steps are the training loop's own (augmentation, forward, loss, distillation from the
    teachers, backward, optimizer, EMA), with ``cfg``'s network, batch size, device and bf16 setting;
    the validation pass is timed on one batch and scaled to ``val_images``. Data loading is not
    included (seconds, once per run). What the recipe prints before a long stage and checks against a deadline.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    spec = run_spec(asdict(cfg))
    rng = np.random.default_rng(0)
    size, classes = spec.input_size, len(spec.labels)
    targets = np.full((cfg.batch_size, classes), 1.0 / classes, dtype=np.float32)
    images = rng.integers(0, 256, (cfg.batch_size, size, size), dtype=np.uint8)
    fake = FaceDataset(images, np.zeros(cfg.batch_size, dtype=np.int64), tuple(map(str, range(cfg.batch_size))))
    warmup = 2  # first calls allocate and pick kernels
    data = _Data(spec, fake, targets, fake, "original", torch.zeros(classes), steps_per_epoch=warmup + steps)
    run = _build(dataclasses.replace(cfg, init=None, epochs=1), data, rank=0, world=1)
    gen = torch.Generator().manual_seed(0)
    batch_targets = torch.from_numpy(targets).to(run.device)

    def step() -> None:
        batch = _train_batch(images, cfg, spec, gen).to(run.device)
        _train_step(run, cfg, data, batch, batch_targets, gen)

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    step_seconds = (time.perf_counter() - started) / steps
    evaluated = 256  # one validation batch
    val = FaceDataset(np.resize(images, (evaluated, size, size)), np.zeros(evaluated, dtype=np.int64), ())
    started = time.perf_counter()
    predict_dataset(EmotionModel.from_network(spec, run.ema.module, tta=False), val)
    val_seconds = (time.perf_counter() - started) * val_images / evaluated
    return step_seconds * (train_images // cfg.batch_size) + val_seconds
