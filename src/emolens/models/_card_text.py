"""The Markdown rendering of a model card (``<name>.md``), from the card's JSON object."""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_ROWS_PER_CLASS", "render_card"]

# Calibration: a predicted class with fewer rows than this keeps the shared temperature (too few to fit its own).
MIN_ROWS_PER_CLASS = 50


def _describe_input(spec: dict[str, Any]) -> str:
    from .._registry import InputSpec

    fields = ("size", "color", "mean", "std", "margin")
    return InputSpec(**{k: v for k, v in spec.items() if k in fields and v is not None}).describe()


def _trained_from(card: dict[str, Any]) -> str:
    base = card.get("trained_from", card["registry_model"])
    return "" if base == card["registry_model"] else f" (trained as a variant of the `{base}` architecture)"


def _calibration_text(card: dict[str, Any]) -> str:
    c = card["calibration"]
    mode = "flip TTA" if card.get("default_tta", True) else "no TTA"
    measured = (
        f"Expected calibration error on val ({mode}, the default): {c['ece_uncalibrated']:.4f} unscaled. "
        f"Cross-fitted (calibrated by NLL on one random half of val and applied to the other, and the reverse; "
        f"ECE of all of val out of fold, averaged over {c['halvings']} halvings): "
        f"{c['ece_cross_fitted_temperature']:.4f} with one temperature, "
        f"{c['ece_cross_fitted_per_class']:.4f} with a temperature per predicted class."
    )
    if c["method"] == "none":
        return (
            f"Calibration: {measured} Neither beats the unscaled probabilities (the NLL-fitted temperature was "
            f"{c['fitted_temperature']:.3f}), so none is applied: the shipped probabilities are the model's own."
        )
    what = (
        "one temperature"
        if c["method"] == "temperature"
        else f"a temperature per predicted class (a class predicted fewer than {MIN_ROWS_PER_CLASS} times keeps "
        "the shared one)"
    )
    temperatures = ", ".join(f"{label} {t:.3f}" for label, t in c["temperatures"].items())
    return (
        f"Calibration: {measured} The better of the two, {what}, is applied: fitted on all of val and stored in "
        f"the weights file ({temperatures}; a row's logits are divided by the temperature of its predicted class, "
        f"which never changes the prediction). The ECE and NLL of the val rows above are therefore optimistic: "
        f"quote the cross-fitted {c['ece']:.4f}."
    )


def _row(split: str, metrics: dict[str, Any]) -> str:
    return f"| {split} | {metrics['count']} | {metrics['accuracy']:.4f} | {metrics['ece']:.4f} | {metrics['nll']:.4f} |"


def _consensus_lines(card: dict[str, Any], mode: str) -> list[str]:
    """The card's section on agreement with the FER+ crowd (empty for cards measured without votes)."""
    m = card["metrics"]
    default = m["val_tta"] if card.get("default_tta", True) else m["val"]
    if "consensus" not in default:
        return []

    def row(split: str, metrics: dict[str, Any]) -> str:
        c, v = metrics["consensus"], metrics["votes"]
        return (
            f"| {split} | {c['count']} | {c['accuracy']:.4f} | {c['mean_recall']:.4f} | {c['ece']:.4f} | "
            f"{v['ece']:.4f} | {v['kl']:.4f} |"
        )

    consensus = default["consensus"]
    lines = [
        "## Agreement with people (FER+ consensus)",
        "",
        "Accuracy against the FER+ majority of ten crowd votes (images whose top vote is tied, `unknown` or "
        "`not_face`, or a label outside the model's, are left out: `images` says how many remain), mean "
        "per-class recall on those labels, ECE against the majority and against the vote distributions "
        "(a prediction counts as the share of people who named its class), and KL divergence from the votes.",
        "",
        "| split | images | consensus accuracy | mean recall | ECE (majority) | ECE (votes) | KL |",
        "|---|---|---|---|---|---|---|",
        row("train (no augmentation)", m["train"]),
        row("val" + ("" if card.get("default_tta", True) else ", the default"), m["val"]),
        row("val, flip TTA" + (" (the default)" if card.get("default_tta", True) else ""), m["val_tta"]),
        "",
        *_recall_and_confusion(consensus, card["labels"], f"Consensus per-class recall on val ({mode})", "majority"),
    ]
    return [*lines, ""]


def _recall_and_confusion(metrics: dict[str, Any], labels: list[str], title: str, truth: str) -> list[str]:
    """Per-class recall and the confusion matrix as Markdown (``truth`` names the rows' label source)."""
    what = "FER+ majority" if truth == "majority" else "true class"
    confusion = title.replace("per-class recall", "confusion matrix").replace("Per-class recall", "Confusion matrix")
    lines = [
        f"{title}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_class_recall"].items()),
        "",
        f"{confusion.removesuffix(')')}; rows = {what}, columns = predicted):",
        "",
        f"| {truth} \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    lines += [
        f"| {label} | " + " | ".join(str(v) for v in row) + " |"
        for label, row in zip(labels, metrics["confusion"], strict=True)
    ]
    return lines


def _unmeasured_card(card: dict[str, Any], input_text: str) -> str:
    """A card written by hand (a third-party model): what it is, not how it scores."""
    runtime = card.get("runtime", "torch")
    what = "ONNX graph" if runtime == "onnx" else f"architecture `{card['architecture'].get('name')}`"
    va = " and valence, arousal" if card.get("valence_arousal") else ""
    return "\n".join(
        [
            f"# Model card: `{card['name']}`",
            "",
            *([card["description"], ""] if card.get("description") else []),
            f"{what}. Input: {input_text} face crop. Output: probabilities over {', '.join(card['labels'])}{va}.",
            f"Weights: `{card['weights_file']}`, sha256 `{card['weights_sha256']}`.",
            "",
            "Not measured by emolens: run `emolens evaluate DATA --model <this card>` for its numbers.",
            "",
            f"License: {card.get('weights_license') or 'not stated'}.",
            "",
        ]
    )


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown."""
    given = card.get("input")
    input_text = given if isinstance(given, str) else _describe_input(given or {"size": card.get("input_size", 48)})
    if "metrics" not in card:
        return _unmeasured_card(card, input_text)
    m = card["metrics"]
    tta = card.get("default_tta", True)
    default = m["val_tta"] if tta else m["val"]
    mode = "flip TTA" if tta else "no TTA"
    targets = card.get("targets", "original")
    learned = "the original FER2013 labels" if targets == "original" else f"FER+ crowd votes (`--targets {targets}`)"
    architecture = card["architecture"].get("name") or card["architecture"].get("builder")
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"Registered as `{card['registry_model']}`{_trained_from(card)}. "
        f"Architecture `{architecture}` (registered name) "
        f"with options `{card['architecture']['options']}`: {card['parameters']:,} parameters.",
        f"Input: {input_text} face crop. Output: probabilities over {', '.join(card['labels'])}"
        f"{' and valence, arousal' if card.get('valence_arousal') else ''}. Learned from {learned}.",
        f"Weights: `{card['weights_file']}`, {card['weights_bytes']:,} bytes, {card['weights_storage']}, "
        f"sha256 `{card['weights_sha256']}`.",
        "",
        "## Accuracy (FER2013)",
        "",
        "| split | images | accuracy | ECE (15 bins) | NLL |",
        "|---|---|---|---|---|",
        _row("train (Training, no augmentation)", m["train"]),
        _row("val (PublicTest)" + ("" if tta else ", the default"), m["val"]),
        _row("val, flip TTA" + (" (the default)" if tta else ""), m["val_tta"]),
        "",
        _calibration_text(card),
        "",
        (
            f"The last epoch ({card['best_epoch']} of {card['epochs']}) is exported; the val split was used to choose "
            "it and the prior shift, so val accuracy is "
            if card.get("epoch_choice") == "last"
            else f"The val split was used to pick the best epoch ({card['best_epoch']} of {card['epochs']}), so val "
            "accuracy is "
        )
        + "slightly optimistic; the PrivateTest split is held out for independent checking. "
        f"Val accuracy of the training run's float32 weights: {card['val_accuracy_fp32_weights']:.4f}.",
        "",
        *_recall_and_confusion(default, card["labels"], f"Per-class recall on val ({mode})", "true"),
    ]
    lines += [
        "",
        *_consensus_lines(card, mode),
        "## Training",
        "",
        f"Command (run from the repository root, {card['training_seconds'] / 60:.0f} minutes on a 2-core CPU):",
        "",
        "```bash",
        card["training_command"],
        "```",
        "",
        f"Training data fingerprint (sha256 of pixels + labels): `{card['train_data_fingerprint_sha256']}`.",
        *([card["note"]] if card.get("note") else []),
        *(
            [
                f"Prior shift: {card['prior_shift']['tau']:g} x log(class prior of the training targets) was added to "
                "the output layer's bias at export (`emolens export --prior-shift`), moving the class-balanced "
                "scores of logit-adjusted training part of the way back towards the classes' frequencies."
            ]
            if card.get("prior_shift")
            else []
        ),
        f"Environment: torch {card['environment']['torch']}, Python {card['environment']['python']}.",
        "",
        "## License",
        "",
        f"Weights: {card['weights_license']}. Data: {card['data_license']}.",
        "",
    ]
    return "\n".join(lines)
