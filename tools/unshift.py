"""Write a teacher from an exported model with its prior shift taken out again.

    python -m tools.unshift CARD --out DIR --name NAME

``emolens export --prior-shift T`` adds ``T x log(class prior)`` to the output bias of the models that ship;
a teacher for distillation should give the class-balanced scores it was trained to give, as the teachers of
``default`` v5 did (exported without a shift). :func:`emolens.training.unshift_card` subtracts the card's
recorded shift, stores the weights in float32 and measures the new card again. The run folder is not needed:
this is how a shipped model becomes a teacher once its run folder is gone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emolens.errors import EmolensError
from emolens.training import unshift_card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("card", type=Path, help="an exported model card (.json)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the teacher's card and weights")
    parser.add_argument("--name", required=True, help="the teacher's name (its files' stem)")
    args = parser.parse_args()
    try:
        card = unshift_card(args.card, args.out, args.name)
    except EmolensError as error:
        parser.error(str(error))
    assert card.record is not None
    val = card.record.metrics.val_tta
    consensus = f", consensus {val.consensus.accuracy:.4f}" if val.consensus else ""
    print(f"wrote {args.out / (args.name + '.json')}: val accuracy with flip TTA {val.accuracy:.4f}{consensus}")


if __name__ == "__main__":
    main()
