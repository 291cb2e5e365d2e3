"""Worker run by the peer's own Python (``--fer-python``): times and scores the ``fer`` package.

Kept free of emolens imports because ``fer`` needs TensorFlow and pins its own dependencies, so it
usually lives in a separate virtual environment. It stays up for the whole comparison, so that its timings
can be taken in rounds between emolens' (a shared host's load drifts; interleaved rounds let it weigh on
both sides alike).

    python _peer_fer.py REQUEST.json   (request: {"photo": path, "crops": [path, ...]})

Prints one JSON line when ready ({"fer_version", "faces"}), then answers commands read from stdin, one
JSON line each: ``time N`` -> {"ms": [N call times on the photo]}; ``crops`` -> one predicted label index
per crop (FER2013 order, -1: no answer) per padding setting, after which it exits.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.disable(logging.WARNING)

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


#: Where answers go: the process's stdout as it started. Anything else printed (TensorFlow, fer) goes to stderr,
#: so that a stray line cannot be read as an answer (``main`` moves file descriptor 1 there).
_REPLIES = sys.stdout


def _answer(payload: dict[str, object]) -> None:
    _REPLIES.write(json.dumps(payload) + "\n")
    _REPLIES.flush()


def _crop_predictions(fer_class: type, crops: list[str]) -> dict[str, list[int]]:
    """Each crop passed as the face box, as a caller with its own detector would: with the default
    offsets (10 px of padding around the box) and without; the caller scores both."""
    import cv2

    answer = {}
    for name, offsets in (("default_offsets", (10, 10)), ("no_offsets", (0, 0))):
        classifier = fer_class(offsets=offsets)
        predictions = []
        for path in crops:
            crop = cv2.imread(path)
            result = classifier.detect_emotions(crop, face_rectangles=[(0, 0, crop.shape[1], crop.shape[0])])
            scores = result[0]["emotions"] if result else None
            predictions.append(LABELS.index(max(LABELS, key=lambda k: scores[k])) if scores else -1)
        answer[name] = predictions
    return answer


def main() -> None:
    global _REPLIES
    _REPLIES = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # prints of the libraries below, from Python or C, go to stderr
    sys.stdout = sys.stderr
    import cv2

    try:
        from fer import FER  # fer < 25.10
    except ImportError:
        from fer.fer import FER

    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    detector = FER()  # the package's defaults: Haar cascade + its quantised mini-Xception
    photo = cv2.imread(request["photo"])
    faces = len(detector.detect_emotions(photo))
    for _ in range(2):
        detector.detect_emotions(photo)
    _answer({"fer_version": importlib.metadata.version("fer"), "faces": faces})
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["time"]:
            samples = []
            for _ in range(int(command[1])):
                start = time.perf_counter()
                detector.detect_emotions(photo)
                samples.append((time.perf_counter() - start) * 1e3)
            _answer({"ms": samples})
        elif command == ["crops"]:
            _answer(_crop_predictions(FER, request["crops"]))
            return
        else:
            _answer({"error": f"unknown command {line.strip()!r}"})


if __name__ == "__main__":
    main()
