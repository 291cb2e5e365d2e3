"""Write a teacher from an exported model with its prior shift taken out again.

    python -m tools.unshift CARD --out DIR --name NAME

``emolens export --prior-shift T`` adds ``T x log(class prior)`` to the output bias of the models that ship;
a teacher for distillation should give the class-balanced scores it was trained to give, as the teachers of
``default`` v5 did (exported without a shift). This subtracts the card's recorded ``bias_added``, stores the
weights in float32 (float16 weights widened: no value changes but the bias) and measures the new card again
with :func:`emolens.training.recalibrate_card`, so its numbers describe the unshifted model. The run folder is
not needed: this is how a shipped model becomes a teacher once its run folder is gone.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from emolens.models import ModelCard, build_model, save_state, spec_from_card
from emolens.training import recalibrate_card


def unshift(card_path: Path, out: Path, name: str) -> ModelCard:
    """``<out>/<name>.json`` and ``.safetensors``: the model of ``card_path`` without its prior shift."""
    card = ModelCard.read(card_path)
    if card.record is None or card.record.training.prior_shift is None:
        raise SystemExit(f"{card_path} records no prior shift: there is nothing to take out")
    shift = card.record.training.prior_shift
    network = build_model(spec_from_card(card_path), card_path.with_name(card.weights_file))
    outputs = [m for m in network.modules() if isinstance(m, torch.nn.Linear) and m.out_features == len(card.labels)]
    if not outputs or outputs[-1].bias is None:
        raise SystemExit(f"{card_path}: no output layer with {len(card.labels)} outputs and a bias to unshift")
    outputs[-1].bias.data -= torch.tensor(shift.bias_added)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    save_state(network.float(), weights)
    training = dataclasses.replace(
        card.record.training,
        prior_shift=None,
        val_accuracy_fp32_weights=None,  # the shifted model's: not measured again here
        note=f"{card.name} with its prior shift ({shift.tau:g}) taken out by tools/unshift.py. "
        + card.record.training.note,
    )
    record = dataclasses.replace(card.record, training=training, weights_storage="float32")
    teacher = dataclasses.replace(card, name=name, weights_file=weights.name, record=record)
    teacher.write(out / f"{name}.json")  # the hash is stale until recalibrate_card measures and rewrites it
    return recalibrate_card(out / f"{name}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("card", type=Path, help="an exported model card (.json)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the teacher's card and weights")
    parser.add_argument("--name", required=True, help="the teacher's name (its files' stem)")
    args = parser.parse_args()
    card = unshift(args.card, args.out, args.name)
    assert card.record is not None
    val = card.record.metrics.val_tta
    consensus = f", consensus {val.consensus.accuracy:.4f}" if val.consensus else ""
    print(f"wrote {args.out / (args.name + '.json')}: val accuracy with flip TTA {val.accuracy:.4f}{consensus}")


if __name__ == "__main__":
    main()
