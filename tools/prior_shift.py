"""Sweep the export's prior shift for a run trained with ``--logit-adjustment``: one table row per shift.

    python -m tools.prior_shift RUN [RUN ...] --shifts 0.3,0.4,0.5 [--val DIR] [--ckplus DIR] [--last]

A RUN is a run folder of ``emolens train`` or an unshifted exported card (``<name>.json``, e.g. a teacher
written by ``emolens export RUN --last-epoch`` or ``python -m tools.unshift``): the card's weights stand in
for the run's, and its recorded training configuration for the folder's.

For each shift T, the run's best weights score ``softmax(log p + T x log(prior))`` (what
``emolens export --prior-shift T`` bakes into the output bias; the prior is the mean training target)
on FER2013 val (consensus accuracy, mean recall on the consensus labels, original-label accuracy)
and on CK+ (accuracy), uncalibrated and with flip TTA where the model ships with it. Rows of the
trade-off curve in docs/training.md come from here; the shipped shift is then checked on the
exported card with ``emolens evaluate``, whose calibration can move a few borderline faces.
Several runs (trained on the same data and targets) are scored as an ensemble: their probabilities are
averaged before the shift, as a distillation with one ``--teacher`` per run averages them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from emolens.models import (
    EmotionModel,
    ModelCard,
    ModelSpec,
    NetworkWeights,
    RunFolder,
    build_model,
    last_epoch_weights,
    prepare_for_inference,
    spec_from_card,
)
from emolens.training import build_targets, load_dataset, predict_dataset, score

from .testdata import SHARED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folder(s) of `emolens train` or exported cards (several: an ensemble)"
    )
    parser.add_argument("--shifts", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1", help="comma-separated shifts")
    parser.add_argument("--val", type=Path, default=SHARED / "datasets" / "fer2013" / "val")
    parser.add_argument("--ckplus", type=Path, default=SHARED / "datasets" / "ckplus48")
    parser.add_argument(
        "--last",
        action="store_true",
        help="score the last epoch's EMA weights (from checkpoint.pt) instead of the best epoch's: the best epoch "
        "is chosen on unshifted scores, which favours early epochs of a run started from a prior-shifted model; "
        "run folders only: a card is scored with the weights it was exported with",
    )
    parser.add_argument(
        "--no-tta", action="store_true", help="score without flip TTA (default: each model's own setting)"
    )
    args = parser.parse_args()

    members = [_member(path, args.last, parser) for path in args.runs]
    configs, specs = [config for config, _, _ in members], [spec for _, spec, _ in members]
    config = configs[0]

    # one folder, however its path was typed (relative paths as the runs recorded them: run from the repository root)
    def data_and_targets(c: dict[str, Any]) -> tuple[Path, str]:
        return Path(c["train_data"]).resolve(), c["targets"]

    if any(data_and_targets(c) != data_and_targets(config) for c in configs):
        parser.error("an ensemble's runs must share their training data and targets (one prior for the shift)")
    if any(spec.labels != specs[0].labels for spec in specs):
        parser.error("an ensemble's runs must share their labels, in the same order")
    train = load_dataset(config["train_data"], "train", ferplus="auto")
    targets, kept = build_targets(train, config["targets"], original_weight=config.get("original_weight", 0.5))
    log_prior = np.log(np.clip(targets[kept].mean(0), 1e-6, None))
    # One copy of val and CK+ per input size among the runs (a 64x64 teacher beside 48x48 ones).
    sized = {
        size: (load_dataset(args.val, "val", size=size), load_dataset(args.ckplus, "val", ferplus=None, size=size))
        for size in sorted({spec.input_size for spec in specs})
    }
    val, ckplus = sized[specs[0].input_size]  # the labels and votes are the same at every size
    probabilities_val, probabilities_ck = [], []
    for path, (_, spec, weights) in zip(args.runs, members, strict=True):
        network = prepare_for_inference(build_model(spec, weights))
        model = EmotionModel.from_network(spec, network, tta=False if args.no_tta else None)  # uncalibrated
        probabilities_val.append(predict_dataset(model, sized[spec.input_size][0]))
        probabilities_ck.append(predict_dataset(model, sized[spec.input_size][1]))
        print(f"{path} ({spec.name}, flip TTA {'on' if model.tta else 'off'})")
    log_val = np.log(np.clip(np.mean(probabilities_val, axis=0), 1e-12, None))
    log_ck = np.log(np.clip(np.mean(probabilities_ck, axis=0), 1e-12, None))

    def shifted(log_p: np.ndarray, shift: float) -> np.ndarray:
        z = log_p + shift * log_prior
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    ensemble = f"; ensemble of {len(members)} runs" if len(members) > 1 else ""
    print(f"prior {np.round(np.exp(log_prior), 3)}{ensemble}")
    names = list(specs[0].labels)
    print(
        "| prior shift | consensus accuracy | mean recall (consensus) | original accuracy | CK+ accuracy | "
        + " | ".join(f"{name} recall (consensus)" for name in names)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(names))
    for shift in (float(t) for t in args.shifts.split(",")):
        v = score(shifted(log_val, shift), val.labels, val.votes)
        c = score(shifted(log_ck, shift), ckplus.labels)
        assert v.consensus is not None
        print(
            f"| {shift:g} | {v.consensus.accuracy:.2%} | {v.consensus.mean_recall:.2%} | {v.accuracy:.2%} "
            f"| {c.accuracy:.2%} | " + " | ".join(f"{v.consensus.per_class_recall[name]:.2f}" for name in names) + " |"
        )


def _member(
    path: Path, last: bool, parser: argparse.ArgumentParser
) -> tuple[dict[str, Any], ModelSpec, NetworkWeights]:
    """A run folder's (or an exported card's) training configuration, spec and weights to score."""
    if path.suffix != ".json":
        run = RunFolder(path)
        return run.config(), run.spec(), last_epoch_weights(run.checkpoint()) if last else run.best_weights
    card = ModelCard.read(path)
    if card.record is None:
        parser.error(f"{path} has no training record: its prior is unknown")
    if card.record.training.prior_shift is not None:
        parser.error(f"{path} is exported with a prior shift: take it out first (python -m tools.unshift)")
    if last:
        print(f"note: --last applies to run folders; {path} is scored with the weights it was exported with")
    return dict(card.record.training.config), spec_from_card(path), path.with_name(card.weights_file)


if __name__ == "__main__":
    main()
