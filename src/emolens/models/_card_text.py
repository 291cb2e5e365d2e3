"""The Markdown rendering of a model card (``<name>.md``), from the typed card."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._card import ModelCard
    from ._card_record import CalibrationRecord, MeasuredRecord, SplitMetrics

__all__ = ["render_card"]


def _trained_from(record: MeasuredRecord) -> str:
    base, registered = record.training.trained_from, record.training.registry_model
    return "" if base == registered else f" (trained as a variant of the `{base}` architecture)"


def _calibration_text(c: CalibrationRecord, tta: bool) -> str:
    mode = "flip TTA" if tta else "no TTA"
    measured = (
        f"Expected calibration error on val ({mode}, the default): {c.ece_uncalibrated:.4f} unscaled. "
        f"Cross-fitted (calibrated by NLL on one random half of val and applied to the other, and the reverse; "
        f"ECE of all of val out of fold, averaged over {c.halvings} halvings): "
        f"{c.ece_cross_fitted_temperature:.4f} with one temperature, "
        f"{c.ece_cross_fitted_per_class:.4f} with a temperature per predicted class."
    )
    if c.method == "none":
        return (
            f"Calibration: {measured} Neither beats the unscaled probabilities (the NLL-fitted temperature was "
            f"{c.fitted_temperature:.3f}), so none is applied: the shipped probabilities are the model's own."
        )
    fewer = f"fewer than {c.min_rows_per_class}" if c.min_rows_per_class is not None else "too few"
    what = (
        "one temperature"
        if c.method == "temperature"
        else f"a temperature per predicted class (a class predicted {fewer} times keeps the shared one)"
    )
    temperatures = ", ".join(f"{label} {t:.3f}" for label, t in c.temperatures.items())
    return (
        f"Calibration: {measured} The better of the two, {what}, is applied: fitted on all of val and stored in "
        f"the weights file ({temperatures}; a row's logits are divided by the temperature of its predicted class, "
        f"which never changes the prediction). The ECE and NLL of the val rows above are therefore optimistic: "
        f"quote the cross-fitted {c.ece:.4f}."
    )


def _row(split: str, metrics: SplitMetrics) -> str:
    return f"| {split} | {metrics.count} | {metrics.accuracy:.4f} | {metrics.ece:.4f} | {metrics.nll:.4f} |"


def _consensus_lines(card: ModelCard, record: MeasuredRecord, mode: str) -> list[str]:
    """The card's section on agreement with the FER+ crowd (empty for cards measured without votes)."""
    m = record.metrics
    consensus = m.default(card.tta).consensus
    if consensus is None:
        return []

    def row(split: str, metrics: SplitMetrics) -> str:
        c, v = metrics.consensus, metrics.votes
        if c is None or v is None:
            return f"| {split} | | | | | | |"
        return (
            f"| {split} | {c.count} | {c.accuracy:.4f} | {c.mean_recall:.4f} | {c.ece:.4f} | {v.ece:.4f} | {v.kl:.4f} |"
        )

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
        row("train (no augmentation)", m.train),
        row("val" + ("" if card.tta else ", the default"), m.val),
        row("val, flip TTA" + (" (the default)" if card.tta else ""), m.val_tta),
        "",
        *_recall_and_confusion(consensus, card.labels, f"Consensus per-class recall on val ({mode})", "majority"),
    ]
    return [*lines, ""]


def _recall_and_confusion(metrics: SplitMetrics, labels: tuple[str, ...], title: str, truth: str) -> list[str]:
    """Per-class recall and the confusion matrix as Markdown (``truth`` names the rows' label source)."""
    what = "FER+ majority" if truth == "majority" else "true class"
    confusion = title.replace("per-class recall", "confusion matrix").replace("Per-class recall", "Confusion matrix")
    lines = [
        f"{title}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.per_class_recall.items()),
        "",
        f"{confusion.removesuffix(')')}; rows = {what}, columns = predicted):",
        "",
        f"| {truth} \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    lines += [
        f"| {label} | " + " | ".join(str(v) for v in row) + " |"
        for label, row in zip(labels, metrics.confusion, strict=True)
    ]
    return lines


def _unmeasured_card(card: ModelCard) -> str:
    """A card written by hand (a third-party model): what it is, not how it scores."""
    what = "ONNX graph" if card.runtime == "onnx" else f"architecture `{card.architecture}`"
    va = " and valence, arousal" if card.valence_arousal else ""
    return "\n".join(
        [
            f"# Model card: `{card.name}`",
            "",
            *([card.description, ""] if card.description else []),
            f"{what}. Input: {card.input.describe()} face crop. Output: probabilities over {', '.join(card.labels)}"
            f"{va}.",
            f"Weights: `{card.weights_file}`, sha256 `{card.weights_sha256}`.",
            "",
            "Not measured by emolens: run `emolens evaluate DATA --model <this card>` for its numbers.",
            "",
            f"License: {card.weights_license or 'not stated'}.",
            "",
        ]
    )


def _epoch_text(record: MeasuredRecord) -> str:
    t = record.training
    if t.epoch_choice == "members":  # an ensemble of exported models (emolens.training.export_ensemble)
        return (
            "An ensemble of exported models, not trained as one: the val split was used to choose its members, "
            "their epochs and the prior shift, so val accuracy is slightly optimistic; the PrivateTest split is "
            "held out for independent checking."
        )
    chosen = (
        f"The last epoch ({t.best_epoch} of {t.epochs}) is exported; the val split was used to choose it and the "
        "prior shift, so val accuracy is "
        if t.epoch_choice == "last"
        else f"The val split was used to pick the best epoch ({t.best_epoch} of {t.epochs}), so val accuracy is "
    )
    fp32 = "" if t.val_accuracy_fp32_weights is None else f"{t.val_accuracy_fp32_weights:.4f}"
    return (
        chosen + "slightly optimistic; the PrivateTest split is held out for independent checking. "
        f"Val accuracy of the training run's float32 weights: {fp32}."
    )


def _training_lines(card: ModelCard, record: MeasuredRecord) -> list[str]:
    t = record.training
    shift = (
        [
            f"Prior shift: {t.prior_shift.tau:g} x log(class prior of the training targets) was added to "
            "the output layer's bias at export (`emolens export --prior-shift`), moving the class-balanced "
            "scores of logit-adjusted training part of the way back towards the classes' frequencies."
        ]
        if t.prior_shift
        else []
    )
    environment = record.environment
    listed = t.config.get("members")  # an ensemble's members, with their commands
    members = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    member_lines = [
        line
        for m in members
        for line in (f"Member `{m.get('card', '?')}`, trained by:", "", "```bash", str(m.get("command", "")), "```", "")
    ]
    return [
        "## Training",
        "",
        f"Command (run from the repository root, {t.seconds / 60:.0f} minutes on a 2-core CPU"
        f"{', the members included' if members else ''}):",
        "",
        "```bash",
        t.command,
        "```",
        "",
        *member_lines,
        f"Training data fingerprint (sha256 of pixels + labels): `{t.train_data_fingerprint_sha256}`.",
        *([t.note] if t.note else []),
        *shift,
        f"Environment: torch {environment.get('torch', '?')}, Python {environment.get('python', '?')}.",
        "",
        "## License",
        "",
        f"Weights: {card.weights_license}. Data: {record.data_license}.",
        "",
    ]


def render_card(card: ModelCard) -> str:
    """The model card as Markdown."""
    record = card.record
    if record is None:
        return _unmeasured_card(card)
    m = record.metrics
    tta = card.tta
    mode = "flip TTA" if tta else "no TTA"
    targets = record.targets
    learned = "the original FER2013 labels" if targets == "original" else f"FER+ crowd votes (`--targets {targets}`)"
    lines = [
        f"# Model card: `{card.name}`",
        "",
        f"Registered as `{record.training.registry_model}`{_trained_from(record)}. "
        f"Architecture `{card.architecture}` (registered name) "
        f"with options `{dict(card.options)}`: {record.parameters:,} parameters.",
        f"Input: {card.input.describe()} face crop. Output: probabilities over {', '.join(card.labels)}"
        f"{' and valence, arousal' if card.valence_arousal else ''}. Learned from {learned}.",
        f"Weights: `{card.weights_file}`, {record.weights_bytes:,} bytes, {record.weights_storage}, "
        f"sha256 `{card.weights_sha256}`.",
        "",
        "## Accuracy (FER2013)",
        "",
        "| split | images | accuracy | ECE (15 bins) | NLL |",
        "|---|---|---|---|---|",
        _row("train (Training, no augmentation)", m.train),
        _row("val (PublicTest)" + ("" if tta else ", the default"), m.val),
        _row("val, flip TTA" + (" (the default)" if tta else ""), m.val_tta),
        "",
        _calibration_text(record.calibration, tta),
        "",
        _epoch_text(record),
        "",
        *_recall_and_confusion(m.default(tta), card.labels, f"Per-class recall on val ({mode})", "true"),
        "",
        *_consensus_lines(card, record, mode),
        *_training_lines(card, record),
    ]
    return "\n".join(lines)
