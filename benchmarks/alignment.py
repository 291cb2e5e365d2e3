"""Does eye alignment help? Accuracy of the default model on rotated FER2013 val faces.

    python benchmarks/alignment.py [--detector yunet] [--per-class 100] [--out benchmarks/results]

Each val face is upscaled to 144x144, rotated by a random angle in [-max, +max] degrees, and
pasted at a random place in a 400x400 canvas of blurred noise. The detector finds it, and the
default model classifies the crop once with alignment (eyes levelled using the detector's
landmarks) and once without. Faces the detector misses count as wrong in both columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from _common import shared_path, write_results

from emolens import Analyzer
from emolens.types import Emotion

CANVAS, FACE = 400, 144


def scene(face: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    canvas = cv2.GaussianBlur(rng.integers(0, 256, (CANVAS, CANVAS), dtype=np.uint8), (0, 0), 6)
    big = cv2.resize(face, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    side = int(FACE * 1.5)
    padded = cv2.copyMakeBorder(
        big,
        (side - FACE) // 2,
        (side - FACE + 1) // 2,
        (side - FACE) // 2,
        (side - FACE + 1) // 2,
        cv2.BORDER_REPLICATE,
    )
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    rotated = cv2.warpAffine(padded, matrix, (side, side), borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), matrix, (side, side))
    x, y = (int(v) for v in rng.integers(0, CANVAS - side, 2))
    region = canvas[y : y + side, x : x + side]
    region[mask > 0] = rotated[mask > 0]
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--max-angle", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    aligned = Analyzer(args.detector, fallback=False, align=True)
    plain = Analyzer(args.detector, fallback=False, align=False)
    counts = {"faces": 0, "detected": 0, "aligned": 0, "not_aligned": 0, "upright_reference": 0}
    val = shared_path("datasets", "fer2013", "val")
    for emotion in Emotion:
        for file in sorted((val / emotion.value).glob("*.jpg"))[: args.per_class]:
            face = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            image = scene(face, float(rng.uniform(-args.max_angle, args.max_angle)), rng)
            counts["faces"] += 1
            counts["upright_reference"] += int(aligned.model.predict([face])[0].argmax() == emotion.label_index)
            a, b = aligned.analyze(image), plain.analyze(image)
            if not a.faces:
                continue
            counts["detected"] += 1
            counts["aligned"] += int(a.faces[0].emotion is emotion)
            counts["not_aligned"] += int(b.faces[0].emotion is emotion)
    n = counts["faces"]
    markdown = (
        f"Alignment (`python benchmarks/alignment.py --detector {args.detector} --per-class {args.per_class} "
        f"--max-angle {args.max_angle:g}`): {n} FER2013 val faces rotated by up to +-{args.max_angle:g} deg in "
        f"400x400 scenes; {args.detector} found {counts['detected']}.\n\n"
        "| crop | accuracy |\n|---|---|\n"
        f"| original upright 48x48 crops (reference) | {counts['upright_reference'] / n:.3f} |\n"
        f"| detected, aligned (eyes levelled) | {counts['aligned'] / n:.3f} |\n"
        f"| detected, not aligned | {counts['not_aligned'] / n:.3f} |\n"
    )
    write_results(
        f"alignment-{args.detector}", {"args": vars(args) | {"out": str(args.out)}, **counts}, markdown, args.out
    )


if __name__ == "__main__":
    main()
