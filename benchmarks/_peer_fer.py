"""Worker run by the peer's own Python (``--fer-python``): times and scores the ``fer`` package.

Kept free of emolens imports because ``fer`` needs TensorFlow and pins its own dependencies, so it
usually lives in a separate virtual environment. Reads a JSON request file, prints a JSON answer.

Request: {"photo": path, "repeat": n, "crops": [path, ...]}; answer: photo timings and, per padding
setting, one predicted label index per crop (FER2013 order).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.disable(logging.WARNING)

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def main() -> None:
    import cv2

    try:
        from fer import FER  # fer < 25.10
    except ImportError:
        from fer.fer import FER

    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    answer: dict[str, object] = {"fer_version": importlib.metadata.version("fer")}

    detector = FER()  # the package's defaults: Haar cascade + its quantised mini-Xception
    photo = cv2.imread(request["photo"])
    found = detector.detect_emotions(photo)
    samples = []
    for _ in range(2):
        detector.detect_emotions(photo)
    for _ in range(request["repeat"]):
        start = time.perf_counter()
        detector.detect_emotions(photo)
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    answer["photo"] = {
        "faces": len(found),
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))],
    }

    # Predictions on face crops: the whole crop is passed as the face box, as a caller with its own
    # detector would. Default offsets (10 px of padding around the box) and no offsets are both run;
    # the caller scores them (-1: no answer).
    for name, offsets in (("default_offsets", (10, 10)), ("no_offsets", (0, 0))):
        classifier = FER(offsets=offsets)
        predictions = []
        for path in request["crops"]:
            crop = cv2.imread(path)
            result = classifier.detect_emotions(crop, face_rectangles=[(0, 0, crop.shape[1], crop.shape[0])])
            scores = result[0]["emotions"] if result else None
            predictions.append(LABELS.index(max(LABELS, key=lambda k: scores[k])) if scores else -1)
        answer[name] = predictions
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
