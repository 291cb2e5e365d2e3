"""Sweep the export's prior shift for a run trained with ``--logit-adjustment``: one table row per shift.

    python -m tools.prior_shift RUN [RUN ...] --shifts 0.3,0.4,0.5 [--val DIR] [--ckplus DIR] [--last]

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

import numpy as np

from emolens.models import EmotionModel, RunFolder, build_model, last_epoch_weights, prepare_for_inference
from emolens.training import build_targets, load_dataset, predict_dataset, score

from .testdata import SHARED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folder(s) of `emolens train` (several: an ensemble)")
    parser.add_argument("--shifts", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1", help="comma-separated shifts")
    parser.add_argument("--val", type=Path, default=SHARED / "datasets" / "fer2013" / "val")
    parser.add_argument("--ckplus", type=Path, default=SHARED / "datasets" / "ckplus48")
    parser.add_argument(
        "--last",
        action="store_true",
        help="score the last epoch's EMA weights (from checkpoint.pt) instead of the best epoch's: the best epoch "
        "is chosen on unshifted scores, which favours early epochs of a run started from a prior-shifted model",
    )
    args = parser.parse_args()

    runs = [RunFolder(path) for path in args.runs]
    configs, specs = [run.config() for run in runs], [run.spec() for run in runs]
    config = configs[0]
    if any((c["train_data"], c["targets"]) != (config["train_data"], config["targets"]) for c in configs):
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
    for run, spec in zip(runs, specs, strict=True):
        weights = last_epoch_weights(run.checkpoint()) if args.last else run.best_weights
        model = EmotionModel.from_network(spec, prepare_for_inference(build_model(spec, weights)))  # uncalibrated
        probabilities_val.append(predict_dataset(model, sized[spec.input_size][0]))
        probabilities_ck.append(predict_dataset(model, sized[spec.input_size][1]))
        print(f"{run.path} ({spec.name}, flip TTA {'on' if spec.tta else 'off'})")
    log_val = np.log(np.clip(np.mean(probabilities_val, axis=0), 1e-12, None))
    log_ck = np.log(np.clip(np.mean(probabilities_ck, axis=0), 1e-12, None))

    def shifted(log_p: np.ndarray, shift: float) -> np.ndarray:
        z = log_p + shift * log_prior
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    print(f"prior {np.round(np.exp(log_prior), 3)}" + (f"; ensemble of {len(runs)} runs" if len(runs) > 1 else ""))
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


if __name__ == "__main__":
    main()
