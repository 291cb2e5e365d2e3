"""What flip test-time augmentation buys each bundled model: accuracy with and without it, and its cost.

    python benchmarks/tta.py [--timing] [--repeat 30] [--out benchmarks/results]

Three settings per model: no TTA, every face mirrored, and what flip TTA does by default: only the faces whose
two most likely labels are less than ``TTA_MARGIN`` apart are mirrored (the share of val faces that are is
a column). Accuracy (FER2013 val against the FER+ majority and against the original labels, and CK+) comes
from ``emolens.training.evaluate_model`` (the shipped calibration applied), so it does not depend on the
machine. ``--timing`` adds the milliseconds per face at batch 64 (64 val faces, every class), each setting in
a fresh process; take it only on a quiet machine (no training beside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, shared_path, write_results

from emolens.models import MODELS, TTA_MARGIN
from emolens.weights import is_available

_TIMING = """
import json, sys, cv2, glob
from _common import time_ms
import emolens
model = emolens.load_model(sys.argv[1], tta=sys.argv[2] == "1").with_options(tta_margin=float(sys.argv[3]))
files = sorted(glob.glob(sys.argv[4] + "/*/*.jpg"))[::50][:64]
crops = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]
print(json.dumps(time_ms(lambda: model.predict(crops), repeat=int(sys.argv[5]), warmup=3)))
"""

#: (label, tta, tta_margin) per row: no TTA, every face mirrored, only the uncertain faces (the default).
SETTINGS = (("no", False, 1.0), ("every face", True, 1.0), ("uncertain faces", True, TTA_MARGIN))


def accuracy(name: str, tta: bool, margin: float) -> dict[str, float]:
    from emolens import load_model
    from emolens.training import evaluate_model

    model = load_model(name, tta=tta).with_options(tta_margin=margin)
    val, _, _ = evaluate_model(model, str(shared_path("datasets", "fer2013", "val")))
    ckplus, _, _ = evaluate_model(model, str(shared_path("datasets", "ckplus48")), ferplus=None)
    assert val.consensus is not None
    return {"consensus": val.consensus.accuracy, "original": val.accuracy, "ckplus": ckplus.accuracy}


def mirrored_share(name: str) -> float:
    """The share of val faces flip TTA mirrors by default: a first-pass margin under TTA_MARGIN."""
    from emolens.training import evaluate_model

    _, probabilities, _ = evaluate_model(
        name, str(shared_path("datasets", "fer2013", "val")), tta=False, calibrated=False
    )
    top = np.sort(probabilities, axis=1)
    return float((top[:, -1] - top[:, -2] < TTA_MARGIN).mean())


def ms_per_face(model: str, tta: bool, margin: float, repeat: int) -> float:
    val = str(shared_path("datasets", "fer2013", "val"))
    command = [sys.executable, "-c", _TIMING, model, "1" if tta else "0", str(margin), val, str(repeat)]
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
        share = mirrored_share(name)
        for label, tta, margin in SETTINGS:
            default = tta == MODELS.get(name).tta and (not tta or margin == TTA_MARGIN)
            row: dict[str, Any] = {"model": name, "tta": label, "tta_margin": margin, "default": default}
            row["mirrored"] = 0.0 if not tta else 1.0 if margin >= 1 else share
            row |= accuracy(name, tta, margin)
            if args.timing:
                row["ms_per_face"] = ms_per_face(name, tta, margin, args.repeat)
            rows.append(row)
            print(row, flush=True)
    timing = " --timing" if args.timing else ""
    lines = [
        f"Flip TTA per model (`python benchmarks/tta.py{timing}`; accuracy on FER2013 val and CK+, calibrated as "
        "shipped" + ("; ms per face at batch 64, fresh process per row" if args.timing else "; no timing") + ")",
        "",
        f"| model | flip TTA (uncertain: margin < {TTA_MARGIN}) | faces mirrored (val) | val consensus "
        "| val original | CK+ |" + (" ms per face |" if args.timing else ""),
        "|---|---|---|---|---|---|" + ("---|" if args.timing else ""),
    ]
    for r in rows:
        mark = " (default)" if r["default"] else ""
        cost = f" {r['ms_per_face']:.3f} |" if args.timing else ""
        lines.append(
            f"| {r['model']} | {r['tta']}{mark} | {r['mirrored']:.0%} | {r['consensus']:.2%} | {r['original']:.2%} "
            f"| {r['ckplus']:.2%} |{cost}"
        )
    write_results("tta", {"machine": machine(), "rows": rows}, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
