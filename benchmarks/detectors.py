"""Detector benchmark: accuracy on hand-labelled photos and latency, for every registered detector.

    python benchmarks/detectors.py [--device cpu|cuda] [--out benchmarks/results]

Recall and precision at IoU >= 0.3 on ../shared/images/dlib-faces (testing.xml + training.xml,
43 faces), faces found on group/multiface.jpg (6 people) and bald_guys.jpg (24+ faces), faces
reported on dogs.jpg (none are real), and median / p95 latency on the group photo resized to 640x480 and to 1280x720.
YuNet runs twice: on its default engine (onnxruntime) and on OpenCV's ``cv2.FaceDetectorYN``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import cv2
from _common import machine, shared_path, thread_env_note, time_ms, write_results
from tools.testdata import labelled_faces, match_faces

from emolens import EmolensError, create_detector
from emolens.detectors import DETECTORS

#: Rows beyond one per registered detector: (row label, detector, options).
EXTRA_ROWS = (("yunet (OpenCV engine)", "yunet", {"engine": "opencv"}),)


def bench(label: str, name: str, options: dict[str, Any], device: str, repeat: int) -> dict[str, Any]:
    detector = create_detector(name, device=device, **options)
    assert detector is not None
    truth = labelled_faces(shared_path("images"))
    found = false_pos = total = 0
    for file, boxes in truth.items():
        detections = detector.detect(cv2.imread(str(shared_path("images", "dlib-faces", file))))
        matched, false = match_faces((d.box for d in detections), boxes)
        found += matched
        false_pos += false
        total += len(boxes)
    group = cv2.imread(str(shared_path("images", "group", "multiface.jpg")))
    bald = cv2.imread(str(shared_path("images", "dlib-faces", "bald_guys.jpg")))
    dogs = cv2.imread(str(shared_path("images", "dlib-faces", "dogs.jpg")))
    hd = cv2.resize(group, (1280, 720), interpolation=cv2.INTER_AREA)
    vga = cv2.resize(group, (640, 480), interpolation=cv2.INTER_AREA)
    detected = found + false_pos
    return {
        "detector": label,
        "recall": found / total,
        "found": found,
        "labelled": total,
        "false_positives": false_pos,
        "precision": found / detected if detected else 0.0,
        "multiface_found": len(detector.detect(group)),
        "bald_guys_found": len(detector.detect(bald)),
        "dogs_faces": len(detector.detect(dogs)),
        "latency_photo": {
            "size": f"{vga.shape[1]}x{vga.shape[0]}",
            **time_ms(lambda: detector.detect(vga), repeat=repeat),
        },
        "latency_1280x720": time_ms(lambda: detector.detect(hd), repeat=repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows, skipped = [], []
    cases = [(name, name, {}) for name in DETECTORS.names()] + list(EXTRA_ROWS)
    for label, name, options in sorted(cases, key=lambda case: case[0]):
        try:
            rows.append(bench(label, name, options, args.device, args.repeat))
        except EmolensError as exc:
            skipped.append(f"{label}: {exc}")
    lines = [
        f"Detectors on {args.device} (`python benchmarks/detectors.py --device {args.device} --repeat {args.repeat}`; "
        f"host: {machine()['cpu']}{thread_env_note()})",
        "",
        "| detector | recall (43 faces, IoU>=0.3) | false pos. | multiface (6) | bald_guys (24+) | dogs (0) "
        "| 640x480 median / p95 ms | 1280x720 median / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['detector']} | {r['found']}/{r['labelled']} ({r['recall']:.0%}) | {r['false_positives']} "
            f"| {r['multiface_found']} | {r['bald_guys_found']} | {r['dogs_faces']} "
            f"| {r['latency_photo']['median_ms']:.1f} / {r['latency_photo']['p95_ms']:.1f} "
            f"| {r['latency_1280x720']['median_ms']:.1f} / {r['latency_1280x720']['p95_ms']:.1f} |"
        )
    # The weights cache of this machine is not a path to print in the docs.
    lines += [f"\nSkipped: {re.sub(r'/[^ ]*?/retina-face/', '$EMOLENS_HOME/retina-face/', s)}" for s in skipped]
    write_results(
        f"detectors-{args.device}",
        {"machine": machine(), "rows": rows, "skipped": skipped},
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
