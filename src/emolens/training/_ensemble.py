"""Join exported models into one ``ensemble`` model and export it, measured like any other.

The members' averaged probabilities agree with people more often than any one member when the members
differ in kind (docs/training.md). :func:`export_ensemble` reads the members' cards (each weights file
checked against its card's SHA-256), builds the registered ``ensemble`` architecture around them, adds a
prior shift to its output layer if asked, and measures and calibrates the result on val as
:func:`~emolens.training.export_run` does, so its card holds the same metrics as every exported model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._checks import check_file_stem
from .._registry import InputSpec, ModelSpec
from ..errors import DatasetError, InvalidOptionError
from ..models import (
    EmotionModel,
    ModelCard,
    PriorShift,
    TrainingRecord,
    build_model,
    prepare_for_inference,
    resolve_model,
    save_state,
)
from ._data import load_dataset
from ._evaluate import evaluate_dataset
from ._export import _jsonable, _measure, _write_card, add_prior_shift

__all__ = ["export_ensemble"]

#: The training settings an ensemble's card takes from its first member: what every member shares.
_SHARED_CONFIG = frozenset(
    {"train_data", "val_data", "targets", "original_weight", "min_emotion_share", "ferplus_train", "ferplus_val"}
    | {"logit_adjustment", "labels"}
)


def export_ensemble(
    cards: Sequence[str | Path],
    out_dir: str | Path,
    name: str,
    *,
    input_size: int | None = None,
    half: bool = False,
    prior_shift: float = 0.0,
    registered_as: str | None = None,
    note: str = "",
    command: str = "",
) -> ModelCard:
    """Write ``<out_dir>/<name>.safetensors``, ``.json`` and ``.md``: the mean of the members' probabilities.

    ``cards`` are 2-8 exported cards without a prior shift (``python -m tools.unshift`` takes one out),
    with the same labels, trained on the same data and targets (one class prior for the shift).
    ``input_size`` is the crop size the ensemble takes (default: the largest member's); a member that
    reads another size gets the crop resized. ``half``, ``prior_shift`` and ``registered_as`` are as for
    :func:`~emolens.training.export_run`; ``command`` is recorded as the way to make it again.
    """
    name = check_file_stem("name", name)
    paths, out = [Path(card) for card in cards], Path(out_dir)
    if len(paths) < 2:  # the architecture refuses more than it allows (emolens.models' ensemble)
        raise InvalidOptionError(f"an ensemble has 2 or more members, not {len(paths)}", option="cards")
    verified = [_member(path) for path in paths]
    members = [card for card, _ in verified]
    first = members[0].record
    assert first is not None  # _member checked it
    for path, card in zip(paths, members, strict=True):
        assert card.record is not None
        if card.labels != members[0].labels:
            raise DatasetError(f"{path} has labels {card.labels}, not {members[0].labels}: one label order for all")
        if card.input.margin != members[0].input.margin:
            raise InvalidOptionError(f"{path} crops faces with another margin than {paths[0]}", option="cards")
        if _data(card.record.training) != _data(first.training):
            raise DatasetError(f"{path} was trained on other data or targets than {paths[0]}: one prior for all")
    size = input_size or max(card.input.size for card in members)
    spec = ModelSpec(
        name=name,
        description="",
        architecture="ensemble",
        labels=members[0].labels,
        input=InputSpec(size=size, margin=members[0].input.margin),
        options={"members": [_member_options(card) for card in members]},
        tta=any(card.tta for card in members),
    )
    network = build_model(spec)
    for index, (member_spec, weights) in enumerate(built for _, built in verified):
        member = build_model(member_spec, weights)
        network.get_submodule(f"members.{index}").load_state_dict(member.state_dict())
    # What the members share (their data, targets and labels); each member's own training is in its command.
    shared = {key: value for key, value in first.training.config.items() if key in _SHARED_CONFIG}
    config: dict[str, Any] = {
        **shared,
        "model": registered_as or "ensemble",
        "architecture": "ensemble",
        "architecture_options": _jsonable(dict(spec.options)),
        "input_size": size,
        "members": [{"card": str(path), "command": _command(card)} for path, card in zip(paths, members, strict=True)],
    }
    shift = add_prior_shift(network, config, spec, prior_shift) if prior_shift else ()
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{name}.safetensors"
    save_state(network, weights_path, half=half)  # _measure adds the metadata
    val = load_dataset(first.training.val_data, "val", size=size)
    fp32 = EmotionModel.from_network(spec, prepare_for_inference(copy.deepcopy(network)), tta=False)
    listed = ", ".join(f"`{card.name}`" for card in members)
    training = TrainingRecord(
        registry_model=registered_as or "ensemble",
        trained_from=registered_as or "ensemble",
        best_epoch=0,
        epochs=0,
        command=command,
        config=_jsonable(config),
        seconds=sum(card.record.training.seconds for card in members if card.record),
        train_data_fingerprint_sha256=first.training.train_data_fingerprint_sha256,
        epoch_choice="members",
        prior_shift=PriorShift(prior_shift, shift) if prior_shift else None,
        note=(f"The mean probability of {listed} (their own cards say how each was trained). " + note).strip(),
        val_accuracy_fp32_weights=evaluate_dataset(fp32, val).accuracy,
    )
    card = _measure(weights_path, spec, name, training, val, half=half)
    return _write_card(card, out / f"{name}.json")


def _member(path: Path) -> tuple[ModelCard, tuple[ModelSpec, Path]]:
    """A member's card, spec and weights, refused unless it is an unshifted torch model whose weights match its
    hash (checked by the one loading path, :func:`emolens.models.resolve_model`)."""
    card = ModelCard.read(path)
    if card.record is None:
        raise DatasetError(f"{path} has no training record: its training data and class prior are unknown")
    if card.record.training.prior_shift is not None:
        raise DatasetError(f"{path} is exported with a prior shift: take it out first (python -m tools.unshift)")
    if card.runtime != "torch" or card.architecture == "ensemble":
        raise InvalidOptionError(
            f"{path}: members are torch networks, not {card.runtime} {card.architecture}",
            option="cards",
        )
    if card.input.color != "gray" or card.input.mean is not None:
        raise InvalidOptionError(
            f"{path}: members read gray crops standardised per image, as emolens' own models", option="cards"
        )
    spec, weights = resolve_model(path)
    assert weights is not None  # a card always names its weights file
    return card, (spec, weights)


def _member_options(card: ModelCard) -> dict[str, Any]:
    return {"architecture": card.architecture, "options": _jsonable(dict(card.options)), "input_size": card.input.size}


def _command(card: ModelCard) -> str:
    return card.record.training.command if card.record else ""


def _data(training: TrainingRecord) -> tuple[Path, str]:
    return Path(training.train_data).resolve(), training.targets
