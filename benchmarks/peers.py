"""Peer comparison: emolens against the `fer` package on the same photo and the same FER2013 val crops.

    python benchmarks/peers.py [--fer-python PATH] [--per-class N] [--repeat N]

`fer` (TensorFlow, Haar + mini-Xception) is never an emolens dependency. It runs in its own
interpreter (``--fer-python``, e.g. a separate virtual environment's ``bin/python``; default: this
one), through ``_peer_fer.py``. Without it the peer rows are skipped with a note.
Reported side by side: latency of one call on a 640x480 photo (and the ratio emolens / peer), faces
found, and accuracy on FER2013 val crops given as whole-crop face boxes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from _common import machine, shared_path, thread_env_note, time_ms, write_results

import emolens
from emolens.models import MODELS
from emolens.training import majority_labels, read_ferplus_table

HERE = Path(__file__).resolve().parent
LABELS = [e.value for e in emolens.Emotion]


class Crops(NamedTuple):
    """FER2013 val crops with their original labels and FER+ majorities (-1: no clear majority)."""

    paths: list[str]
    labels: np.ndarray
    majority: np.ndarray


def val_crops(per_class: int | None) -> Crops:
    """The FER2013 val images, the first ``per_class`` of each class if given."""
    root = shared_path("datasets", "fer2013", "val")
    votes, _ = read_ferplus_table(root.parent / "ferplus" / "val.csv")
    paths, labels, majority = [], [], []
    for index, label in enumerate(LABELS[:7]):
        for path in sorted((root / label).glob("*.jpg"))[:per_class]:
            paths.append(str(path))
            labels.append(index)
            row = votes.get(f"{label}/{path.name}")
            majority.append(int(majority_labels(row[None])[0]) if row is not None else -1)
    return Crops(paths, np.array(labels), np.array(majority))


def scores(predicted: np.ndarray, crops: Crops) -> dict[str, float | int]:
    """Accuracy against the original labels and against the FER+ majority (where there is one)."""
    voted = crops.majority >= 0
    return {
        "accuracy": float((predicted == crops.labels).mean()),
        "consensus_accuracy": float((predicted[voted] == crops.majority[voted]).mean()),
        "consensus_crops": int(voted.sum()),
    }


class Config(NamedTuple):
    """One emolens configuration: a bundled model as shipped, or a speed setting of one."""

    model: str
    precision: str = "auto"
    tta: bool | None = None  # None: the model's default
    tta_margin: float | None = None  # flip TTA on the faces under this margin; None: TTA_MARGIN, 1.0: every face
    max_side: int | None = None  # detector input size; None: the detector's default
    engine: str | None = None  # what runs YuNet; None: its default (onnxruntime where installed)

    @property
    def label(self) -> str:
        parts = [f"{self.model} model"]
        parts += [self.precision] if self.precision != "auto" else []
        parts += [f"TTA {'on' if self.tta else 'off'}"] if self.tta is not None else []
        parts += ["flip TTA on every face"] if self.tta_margin == 1.0 else []
        parts += [f"detector at {self.max_side} px"] if self.max_side else []
        parts += [f"detector on {self.engine}"] if self.engine else []
        return ", ".join(parts)

    @property
    def detector_options(self) -> dict[str, Any] | None:
        options = {"max_side": self.max_side, "engine": self.engine}
        return {key: value for key, value in options.items() if value is not None} or None


#: Speed settings measured beside the shipped models: flip TTA on every face (as before 2026-12-07; the default
#: now mirrors only the uncertain faces, benchmarks/tta.py), YuNet on OpenCV (its engine before onnxruntime became the
#: default), int8 (ONNX Runtime), and YuNet on a 320 px copy (benchmarks/detector_sizing.py: full recall on faces
#: of 40 px and more at that size, lower below).
SPEED_CONFIGS = (
    Config("default", tta_margin=1.0),
    Config("default", engine="opencv"),
    Config("fast", engine="opencv"),
    Config("default", precision="int8"),
    Config("default", precision="int8", max_side=320),
    Config("default", tta=False, max_side=320),
    Config("fast", precision="int8"),
    Config("fast", precision="int8", max_side=320),
)


def crop_predictions(model: emolens.EmotionModel, crops: Crops) -> np.ndarray:
    """The model's answer for every crop, given as a whole-image face box."""
    on_crops = emolens.Analyzer(detector=None, model=model)
    predicted = []
    for start in range(0, len(crops.paths), 256):
        results = on_crops.analyze_batch(crops.paths[start : start + 256])
        predicted += [LABELS.index(r.faces[0].emotion.value) for r in results]
    return np.array(predicted)


def emolens_row(config: Config, photo: np.ndarray, crops: Crops, repeat: int) -> dict[str, Any]:
    model = emolens.load_model(config.model, precision=config.precision, tta=config.tta)
    if config.tta_margin is not None:
        model = model.with_options(tta_margin=config.tta_margin)
    analyzer = emolens.Analyzer(model=model, detector_options=config.detector_options)
    analyzer.warmup()
    faces = len(analyzer.analyze(photo, fallback=False).faces)
    timing = time_ms(lambda: analyzer.analyze(photo), repeat=repeat)
    return {
        "name": f"emolens ({config.label}, {analyzer.detector_name})",
        "model": config.model,
        "config": config._asdict(),
        "tta": model.tta,
        "faces": faces,
        **timing,
        **scores(crop_predictions(model, crops), crops),
    }


def fer_row(python: str, photo_path: Path, crops: Crops, repeat: int) -> dict[str, Any] | str:
    """The peer's measurements, or a note saying why there are none."""
    probe = subprocess.run([python, "-c", "import fer"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`fer` is not importable by {python}: peer rows skipped (pass --fer-python)"
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"photo": str(photo_path), "repeat": repeat, "crops": crops.paths}))
        out = subprocess.run([python, str(HERE / "_peer_fer.py"), str(request)], capture_output=True, text=True)
    if out.returncode != 0:
        return f"`fer` failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    padded, unpadded = (scores(np.array(answer[k]), crops) for k in ("default_offsets", "no_offsets"))
    best = max(padded, unpadded, key=lambda row: row["accuracy"])  # chosen on the original labels
    return {
        "name": f"fer {answer['fer_version']} (Haar + mini-Xception, TFLite)",
        "faces": answer["photo"]["faces"],
        "median_ms": answer["photo"]["median_ms"],
        "p95_ms": answer["photo"]["p95_ms"],
        **best,
        "accuracy_default_offsets": padded["accuracy"],
        "accuracy_no_offsets": unpadded["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", default=sys.executable, help="Python interpreter that can import fer")
    parser.add_argument("--per-class", type=int, help="val crops per class (default: all 3,589)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    photo = cv2.resize(
        cv2.imread(str(shared_path("images", "group", "multiface.jpg"))), (640, 480), interpolation=cv2.INTER_AREA
    )
    crops = val_crops(args.per_class)
    bundled = [spec.name for spec in MODELS.specs() if spec.weights and spec.weights[0].bundled]
    configs = [Config(name) for name in bundled] + [c for c in SPEED_CONFIGS if c.model in bundled]
    rows = [emolens_row(config, photo, crops, args.repeat) for config in configs]
    with tempfile.TemporaryDirectory() as tmp:
        photo_path = Path(tmp) / "photo.png"
        cv2.imwrite(str(photo_path), photo)
        peer = fer_row(args.fer_python, photo_path, crops, args.repeat)

    command = "python benchmarks/peers.py" + (f" --per-class {args.per_class}" if args.per_class else "")
    lines = [
        f"Peer comparison (`{command} --fer-python <python with fer>`; group/multiface.jpg resized to "
        f"640x480 with 6 people; {len(crops.paths):,} FER2013 val crops passed as whole-crop face boxes, "
        f"{int((crops.majority >= 0).sum()):,} of them with a FER+ majority; "
        f"host: {machine()['cpu']}{thread_env_note()})",
        "",
        "| library | faces reported (6 people) | photo median / p95 ms | val accuracy (FER+ majority) "
        "| val accuracy (original label) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['faces']} | {r['median_ms']:.1f} / {r['p95_ms']:.1f} | {r['consensus_accuracy']:.1%} "
        f"| {r['accuracy']:.1%} |"
        for r in [*rows, *([peer] if isinstance(peer, dict) else [])]
    ]
    lines.append("")
    if isinstance(peer, dict):
        lines.append(
            f"`fer` runs with the better (on the original labels) of its default 10 px face padding "
            f"({peer['accuracy_default_offsets']:.1%}) and no padding ({peer['accuracy_no_offsets']:.1%})."
        )
        lines.append("")
        lines += [
            f"- {r['name']} / fer: latency x{r['median_ms'] / peer['median_ms']:.2f}, "
            f"consensus accuracy {100 * (r['consensus_accuracy'] - peer['consensus_accuracy']):+.1f} points, "
            f"original-label accuracy {100 * (r['accuracy'] - peer['accuracy']):+.1f} points"
            for r in rows
        ]
    else:
        lines.append(peer)
    write_results(
        "peers",
        {"machine": machine(), "emolens": rows, "fer": peer, "crops": len(crops.paths)},
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
