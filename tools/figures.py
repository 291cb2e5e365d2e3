"""Generate the docs' figures from real runs and the measurements already in the repository.

``python -m tools.figures`` writes ``docs/images/``:

- ``annotated-demo.png`` and ``annotated-demo.txt``: ``emolens.annotate`` on the public-domain demo
  photo (``tools/demo_photo.py``) and the table ``emolens analyze`` prints for it;
- ``confusion-<model>.png``: each bundled model's confusion matrices (FER+ majority and original
  labels, FER2013 val) from its model card, i.e. from the measurements ``emolens export`` made;
- ``speed-cpu.png``: faces per second per model from ``benchmarks/results/speed-cpu.json``;
- ``video-timeline.png``: ``emolens.analyze_video`` on a clip made from the demo photo.

Nothing from ../shared appears in a figure: the photos are public-domain portraits that ship inside
scikit-image and matplotlib.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
WEIGHTS = REPO / "src" / "emolens" / "models" / "weights"


def annotated_demo() -> None:
    import emolens
    from emolens.cli import main

    from .demo_photo import demo_photo

    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / "demo.jpg"
        demo_photo(photo)
        result = emolens.analyze(photo)
        cv2.imwrite(str(IMAGES / "annotated-demo.png"), emolens.annotate(photo, result))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            main(["analyze", str(photo)])
    text = printed.getvalue().replace(str(photo), "demo.jpg")
    # Timings vary from run to run: the text keeps everything else.
    (IMAGES / "annotated-demo.txt").write_text(re.sub(r"  \d+ ms$", "", text, flags=re.MULTILINE))


def confusion_matrices() -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emolens.labels import display_label
    from emolens.models import MODELS

    written = []
    seen: set[str] = set()
    for spec in MODELS.specs():
        if not (spec.weights and spec.weights[0].bundled):
            continue
        stem = spec.weights[0].name.removesuffix(".safetensors")
        if stem in seen:
            continue
        seen.add(stem)
        card = json.loads((WEIGHTS / f"{stem}.json").read_text())
        metrics = card["metrics"]["val_tta" if spec.tta else "val"]
        panels: list[tuple[str, Any, float]] = []
        if metrics.get("consensus"):
            consensus = metrics["consensus"]
            panels.append(("FER+ majority (what people named)", consensus["confusion"], consensus["accuracy"]))
        panels.append(("FER2013 original label", metrics["confusion"], metrics["accuracy"]))
        names = [display_label(label) for label in spec.labels]
        figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
        for axis, (title, matrix, accuracy) in zip(axes[0], panels, strict=True):
            counts = np.asarray(matrix, dtype=float)
            rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
            axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
            for i in range(len(names)):
                for j in range(len(names)):
                    axis.text(
                        j,
                        i,
                        f"{rows[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rows[i, j] > 0.55 else "#1d2330",
                    )
            axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
            axis.set_yticks(range(len(names)), names, fontsize=8)
            axis.set_xlabel("predicted")
            axis.set_ylabel("true")
            axis.set_title(f"{title}\naccuracy {accuracy:.1%}", fontsize=9)
        figure.suptitle(f"{spec.name} ({stem}), FER2013 val, rows normalised", fontsize=10)
        figure.tight_layout()
        target = IMAGES / f"confusion-{spec.name}.png"
        figure.savefig(target, dpi=110)
        plt.close(figure)
        written.append(target.name)
    return written


def speed_chart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((REPO / "benchmarks" / "results" / "speed-cpu.json").read_text())
    rows = [r for r in data["models"] if r["batch"] == 64]
    labels = [f"{r['model']}{' (TTA)' if r['tta'] else ''}" for r in rows]
    rates = [r["faces_per_s"] for r in rows]
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    axis.barh(labels, rates, color="#4b5bdc")
    for y, rate in enumerate(rates):
        axis.text(rate, y, f" {rate:,.0f}", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("faces per second, batch 64 (log scale)")
    axis.set_title("Emotion-model throughput on the reference 2-core CPU (benchmarks/speed.py)", fontsize=9)
    figure.tight_layout()
    figure.savefig(IMAGES / "speed-cpu.png", dpi=110)
    plt.close(figure)


def video_timeline() -> None:
    import emolens

    from .demo_photo import demo_photo

    photo = demo_photo()
    height, width = photo.shape[:2]
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
        for index in range(40):  # a slow zoom on both portraits: two tracks side by side
            zoom = 1 + 0.006 * index
            frame = cv2.resize(photo, None, fx=zoom, fy=zoom)
            top, left = (frame.shape[0] - height) // 2, (frame.shape[1] - width) // 2
            writer.write(np.ascontiguousarray(frame[top : top + height, left : left + width]))
        writer.release()
        analysis = emolens.VideoAnalysis(emolens.analyze_video(str(clip), model="default"))
        analysis.plot_timeline(IMAGES / "video-timeline.png")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    annotated_demo()
    print("wrote annotated-demo.png, annotated-demo.txt")
    print("wrote", ", ".join(confusion_matrices()))
    speed_chart()
    print("wrote speed-cpu.png")
    video_timeline()
    print("wrote video-timeline.png")


if __name__ == "__main__":
    main()
