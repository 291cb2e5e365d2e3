"""Join exported models into one ``ensemble`` model (the mean of their probabilities), measured like any other.

    python -m tools.ensemble CARD CARD [CARD ...] --out DIR --name NAME [--prior-shift T] [--half]
        [--register-as large] [--input-size 96] [--note TEXT]

Each card must be exported without a prior shift (``python -m tools.unshift`` takes one out) and trained
on the same data and targets. Sweep the shift first with ``python -m tools.prior_shift CARD CARD ...``
(the same members, scored one by one and averaged), then write the ensemble at the chosen shift and check
its card with ``emolens evaluate ../shared/datasets/ckplus48 --model DIR/NAME.json``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from emolens.errors import EmolensError
from emolens.training import export_ensemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cards", type=Path, nargs="+", help="exported model cards (.json), 2 to 8")
    parser.add_argument("--out", type=Path, required=True, help="folder for the ensemble's card and weights")
    parser.add_argument("--name", required=True, help="the ensemble's name (its files' stem)")
    parser.add_argument("--input-size", type=int, help="crop size the ensemble takes (default: the largest member's)")
    parser.add_argument("--prior-shift", type=float, default=0.0, help="as emolens export --prior-shift (default: 0)")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    parser.add_argument("--register-as", help="the registered model name the weights will ship as")
    parser.add_argument("--note", default="", help="provenance printed in the card (how the members were made)")
    args = parser.parse_args()
    command = "python -m tools.ensemble " + shlex.join(sys.argv[1:])
    try:
        card = export_ensemble(
            args.cards,
            args.out,
            args.name,
            input_size=args.input_size,
            half=args.half,
            prior_shift=args.prior_shift,
            registered_as=args.register_as,
            note=args.note,
            command=command,
        )
    except EmolensError as error:
        parser.error(str(error))
    assert card.record is not None
    default = card.record.metrics.default(card.tta)
    consensus = f", consensus {default.consensus.accuracy:.4f}" if default.consensus else ""
    print(f"wrote {args.out / (args.name + '.json')}: val accuracy {default.accuracy:.4f}{consensus}")


if __name__ == "__main__":
    main()
