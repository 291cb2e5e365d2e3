"""What flip test-time augmentation buys each bundled model: accuracy with and without it, and its cost.

    python benchmarks/tta.py [--timing] [--repeat 30] [--out benchmarks/results]

Accuracy (FER2013 val against the FER+ majority and against the original labels, and CK+) comes from
``emolens.training.evaluate_model`` with ``tta`` forced on and off (the shipped calibration applied), so it
does not depend on the machine. ``--timing`` adds the milliseconds per face at batch 64, each setting in
a fresh process; take it only on a quiet machine (no training beside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import machine, shared_path, write_results

from emolens.models import MODELS
from emolens.weights import is_available

_TIMING = """
import json, sys, cv2, glob
from _common import time_ms
import emolens
model = emolens.load_model(sys.argv[1], tta=sys.argv[2] == "1")
files = sorted(glob.glob(sys.argv[3] + "/*.jpg"))[:64]
crops = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]
print(json.dumps(time_ms(lambda: model.predict(crops), repeat=int(sys.argv[4]), warmup=3)))
"""


def accuracy(model: str, tta: bool) -> dict[str, float]:
    from emolens.training import evaluate_model

    val, _, _ = evaluate_model(model, str(shared_path("datasets", "fer2013", "val")), tta=tta)
    ckplus, _, _ = evaluate_model(model, str(shared_path("datasets", "ckplus48")), tta=tta, ferplus=None)
    assert val.consensus is not None
    return {"consensus": val.consensus.accuracy, "original": val.accuracy, "ckplus": ckplus.accuracy}


def ms_per_face(model: str, tta: bool, repeat: int) -> float:
    happy = str(shared_path("datasets", "fer2013", "val", "happy"))
    command = [sys.executable, "-c", _TIMING, model, "1" if tta else "0", happy, str(repeat)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]) / 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="also time it (a quiet machine only)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    names = [
        spec.name
        for spec in MODELS.specs()
        if spec.runtime == "torch" and spec.weights and all(is_available(w) for w in spec.weights)
    ]
    rows: list[dict[str, Any]] = []
    for name in names:
        for tta in (False, True):
            row: dict[str, Any] = {"model": name, "tta": tta, "default": tta == MODELS.get(name).tta}
            row |= accuracy(name, tta)
            if args.timing:
                row["ms_per_face"] = ms_per_face(name, tta, args.repeat)
            rows.append(row)
            print(row, flush=True)
    timing = " --timing" if args.timing else ""
    lines = [
        f"Flip TTA per model (`python benchmarks/tta.py{timing}`; accuracy on FER2013 val and CK+, calibrated as "
        "shipped" + ("; ms per face at batch 64, fresh process per row" if args.timing else "; no timing") + ")",
        "",
        "| model | flip TTA | val consensus | val original | CK+ |" + (" ms per face |" if args.timing else ""),
        "|---|---|---|---|---|" + ("---|" if args.timing else ""),
    ]
    for r in rows:
        mark = " (default)" if r["default"] else ""
        cost = f" {r['ms_per_face']:.3f} |" if args.timing else ""
        lines.append(
            f"| {r['model']} | {'yes' if r['tta'] else 'no'}{mark} | {r['consensus']:.2%} | {r['original']:.2%} "
            f"| {r['ckplus']:.2%} |{cost}"
        )
    write_results("tta", {"machine": machine(), "rows": rows}, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
