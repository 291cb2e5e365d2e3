"""``emolens evaluate``: accuracy, recall and confusion on a labelled dataset."""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path
from typing import Any

from .._argtypes import fraction
from .._registry import TTA_MARGIN
from ..errors import InvalidOptionError
from ._common import (
    STRICT_DATA_HELP,
    output_file,
)


def register(sub: Any) -> None:
    """Add ``emolens evaluate`` to the subcommands."""
    p = sub.add_parser("evaluate", help="accuracy, per-class recall and confusion matrix on a labelled dataset")
    p.add_argument("dataset", help="image folder (<emotion>/*.jpg) or FER2013 CSV")
    p.add_argument(
        "--model",
        action="append",
        metavar="MODEL_OR_RUN",
        help="registered model (default: 'default'), exported model card (.json), or run folder of "
        "`emolens train`; repeat to evaluate the ensemble (averaged probabilities)",
    )
    p.add_argument(
        "--split", choices=["train", "val", "test"], help="rows of a FER2013 CSV to use (default: val; CSV only)"
    )
    p.add_argument(
        "--ferplus",
        metavar="CSV",
        help="FER+ vote table (or fer2013new.csv for a FER2013 CSV) to also score against the crowd "
        "(default: found beside the data when present)",
    )
    tta = p.add_mutually_exclusive_group()  # both at once was accepted, the last one winning
    tta.add_argument("--tta", dest="tta", action="store_true", default=None, help="average with mirrored faces")
    tta.add_argument("--no-tta", dest="tta", action="store_false", help="disable the model's default TTA")
    p.add_argument(
        "--tta-margin",
        type=fraction,
        metavar="M",
        help="under flip TTA, mirror the faces whose two most likely labels are less than M apart (default: "
        f"{TTA_MARGIN}, as analyze() runs; 1 mirrors every face, as the model cards measure)",
    )
    p.add_argument(
        "--predictions", metavar="CSV", help="write file, true, predicted and a probability per label for each image"
    )
    p.add_argument("--confusion-png", metavar="PNG", help="save the confusion matrix as an image (emolens[plot])")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--cross-fit",
        action="store_true",
        help="also measure calibration as `emolens export` does: ECE with each random half of the data calibrated "
        "by the other (the stored calibration is fitted on val, so there the ECE above is in-sample)",
    )
    p.add_argument("--strict-data", action="store_true", help=STRICT_DATA_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import evaluate_ensemble

    if args.split is not None and Path(args.dataset).suffix.lower() != ".csv":  # it would be silently ignored
        raise InvalidOptionError(
            f"--split picks rows of a FER2013 CSV; {args.dataset} is an image folder, all of whose images are "
            "evaluated: leave out --split, or name the split's own folder (e.g. fer2013/val)",
            option="--split",
        )
    args.split = args.split or "val"
    if args.tta_margin is not None and args.tta is False:
        raise InvalidOptionError(
            "--tta-margin chooses which faces flip TTA mirrors, and --no-tta turns flip TTA off: pass one of them",
            option="--tta-margin",
        )
    output_file("--predictions", args.predictions)  # checked before the evaluation, not after it
    output_file("--confusion-png", args.confusion_png)
    models = args.model or ["default"]
    name = " + ".join(models)
    ferplus = args.ferplus or "auto"
    # one set of settings for the evaluation and, with --cross-fit, its uncalibrated twin
    evaluate = functools.partial(
        evaluate_ensemble,
        models,
        args.dataset,
        split=args.split,
        tta=args.tta,
        tta_margin=args.tta_margin,
        skip_unreadable=not args.strict_data,
        ferplus=ferplus,
    )
    evaluation, probabilities, data = evaluate()
    if args.predictions:
        _write_predictions(Path(args.predictions), data, probabilities)
    if args.confusion_png:
        evaluation.plot_confusion(args.confusion_png, title=f"{name} on {Path(args.dataset).name}")
    calibration = None
    if args.cross_fit:  # the model's own probabilities, as `emolens export` calibrates them
        from ..training import choose_calibration

        _, raw, _ = evaluate(calibrated=False)
        calibration = choose_calibration(raw, data.labels)
    if args.json:  # temperatures are keyed by the dataset's own classes (a custom label set has its own)
        extra = {"cross_fitted": calibration.to_dict(data.classes)} if calibration else {}
        margin = {"tta_margin": args.tta_margin} if args.tta_margin is not None else {}
        record = {"model": name, "dataset": args.dataset, **margin, **evaluation.to_dict(), **extra}
        print(json.dumps(_without_nan(record), allow_nan=False))
        return 0
    print(f"model {name} on {args.dataset}: {evaluation.count} images")
    consensus, votes = evaluation.consensus, evaluation.votes
    if consensus is not None and votes is not None:
        print(
            f"consensus (FER+ majority, {consensus.count} images with one): accuracy {consensus.accuracy:.4f}   "
            f"mean recall {consensus.mean_recall:.4f}   ECE {consensus.ece:.4f}"
        )
        print(
            f"vote distribution ({votes.count} images): cross-entropy {votes.cross_entropy:.4f}   "
            f"KL {votes.kl:.4f}   soft-label ECE {votes.ece:.4f}"
        )
    label = "original labels: " if consensus is not None else ""
    print(
        f"{label}accuracy {evaluation.accuracy:.4f}   mean recall {evaluation.mean_recall:.4f}   "
        f"ECE {evaluation.ece:.4f}   NLL {evaluation.nll:.4f}"
    )
    print("per-class recall: " + "  ".join(f"{k} {v:.3f}" for k, v in evaluation.per_class_recall.items()))
    print(evaluation.confusion_text())
    if consensus is not None:
        print("consensus per-class recall: " + "  ".join(f"{k} {v:.3f}" for k, v in consensus.per_class_recall.items()))
        print(consensus.confusion_text())
    if calibration:
        ece = calibration.report
        print(
            f"cross-fitted ECE ({calibration.halvings} halvings, before any stored calibration): unscaled "
            f"{ece['ece_uncalibrated']:.4f}, one temperature {ece['ece_cross_fitted_temperature']:.4f}, "
            f"per predicted class {ece['ece_cross_fitted_per_class']:.4f}; "
            f"best: {calibration.method} {calibration.ece:.4f}"
        )
    if data.skipped:
        print(f"skipped {data.skipped} unreadable images")
    return 0


def _write_predictions(path: Path, data: object, probabilities: object) -> None:
    import csv

    import numpy as np

    from ..training import FaceDataset

    assert isinstance(data, FaceDataset) and isinstance(probabilities, np.ndarray)
    names = data.classes
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "true", "predicted", *names])
        for source, label, row in zip(data.sources, data.labels, probabilities, strict=True):
            writer.writerow([source, names[label], names[int(row.argmax())], *(f"{p:.6f}" for p in row)])


def _without_nan(value: Any) -> Any:
    """``value`` with every NaN as None (JSON null): the recall of a class the dataset lacks (CK+ has no neutral
    face) is undefined, and NaN is not JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    return value
