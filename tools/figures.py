"""Generate the docs' figures from real runs and the measurements already in the repository.

``python -m tools.figures`` writes ``docs/images/``:

- ``annotated-demo.png`` and ``annotated-demo.txt``: ``emolens.annotate`` on the public-domain demo
  photo (``tools/demo_photo.py``) and the table ``emolens analyze`` prints for it;
- ``confusion-<model>.png``: each bundled model's confusion matrices (FER+ majority and original
  labels, FER2013 val) from its model card, i.e. from the measurements ``emolens export`` made;
- ``reliability-<model>.png``: each bundled model's reliability diagrams on FER2013 val (needs
  ../shared), evaluated afresh as ``emolens evaluate`` does: confidence against the share of the ten
  annotators who named the predicted class, and against the FER+ majority;
- ``speed-cpu.png``: faces per second per model from ``benchmarks/results/speed-cpu.json``;
- ``peers.png``: latency and accuracy of each bundled model against the ``fer`` package, from
  ``benchmarks/results/peers.json`` (``python benchmarks/peers.py``);
- ``tradeoff.png``: the trade-off curve table of ``docs/training.md`` (consensus accuracy against
  CK+ accuracy, one line per recipe through its prior shifts), drawn from the table itself;
- ``data-flow.png``: the pipeline and the model-loading path of ``docs/architecture.md``, drawn;
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
from collections.abc import Callable
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
    from emolens.models import MODELS, ModelCard

    written = []
    seen: set[str] = set()
    for spec in MODELS.specs():
        if not (spec.weights and spec.weights[0].bundled):
            continue
        stem = spec.weights[0].name.removesuffix(".safetensors")
        if stem in seen:
            continue
        seen.add(stem)
        record = ModelCard.read(WEIGHTS / f"{stem}.json").record
        assert record is not None, f"{stem}.json is a measured card"
        metrics = record.metrics.default(spec.tta)
        panels: list[tuple[str, Any, float]] = []
        if metrics.consensus is not None:
            consensus = metrics.consensus
            panels.append(("FER+ majority (what people named)", consensus.confusion, consensus.accuracy))
        panels.append(("FER2013 original label", metrics.confusion, metrics.accuracy))
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


def _bundled_specs() -> list[Any]:
    """One registered spec per bundled weights file (``large`` and ``fer2013-large`` may share one)."""
    from emolens.models import MODELS

    specs, seen = [], set()
    for spec in MODELS.specs():
        if spec.weights and spec.weights[0].bundled and spec.weights[0].name not in seen:
            seen.add(spec.weights[0].name)
            specs.append(spec)
    return specs


def reliability_diagrams(val: Path, bins: int = 10) -> list[str]:
    """Confidence against agreement, binned, for each bundled model's calibrated val predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emolens.training import evaluate_model, expected_calibration_error, majority_labels, vote_distribution

    written = []
    for spec in _bundled_specs():
        _, probabilities, data = evaluate_model(spec.name, str(val))
        voted = data.votes.sum(1) > 0
        soft = vote_distribution(data.votes[voted])
        majority = majority_labels(data.votes[voted])
        kept = majority >= 0
        panels = [
            ("share of annotators who named it", probabilities[voted], soft),
            ("agrees with the FER+ majority", probabilities[voted][kept], majority[kept]),
        ]
        figure, axes = plt.subplots(1, 2, figsize=(9.6, 4.2))
        edges = np.linspace(0, 1, bins + 1)
        for axis, (title, probs, labels) in zip(axes, panels, strict=True):
            confidence, predicted = probs.max(1), probs.argmax(1)
            if labels.ndim == 2:
                correct = labels[np.arange(len(labels)), predicted]
            else:
                correct = (predicted == labels).astype(float)
            which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
            counts = np.bincount(which, minlength=bins)
            observed = np.bincount(which, weights=correct, minlength=bins) / np.maximum(counts, 1)
            centres = (edges[:-1] + edges[1:]) / 2
            shown = counts > 0
            axis.bar(centres[shown], observed[shown], width=1 / bins, color="#4b5bdc", edgecolor="white", label=title)
            axis.plot([0, 1], [0, 1], color="#d04a4a", linestyle="--", linewidth=1, label="perfect calibration")
            for x, y, n in zip(centres[shown], observed[shown], counts[shown], strict=True):
                axis.text(x, y + 0.01, f"{n}", ha="center", va="bottom", fontsize=6, color="#555")
            ece = expected_calibration_error(probs, labels)
            axis.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (calibrated top probability)")
            axis.set_ylabel(title)
            axis.set_title(f"{title}: ECE {ece:.1%} ({len(probs)} faces)", fontsize=9)
            axis.legend(loc="upper left", fontsize=7)
        figure.suptitle(f"{spec.name}, FER2013 val (numbers: faces per bin)", fontsize=10)
        figure.tight_layout()
        target = IMAGES / f"reliability-{spec.name}.png"
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
    labels = [
        f"{r['model']}{' (TTA)' if r['tta'] else ''}" + (f", {r['runtime']}" if "runtime" in r else "") for r in rows
    ]
    rates = [r["faces_per_s"] for r in rows]
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    axis.barh(labels, rates, color="#4b5bdc")
    for y, rate in enumerate(rates):
        axis.text(rate, y, f" {rate:,.0f}", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("faces per second, batch 64 (log scale)")
    host = data.get("machine", {}).get("cpu", "the reference CPU")
    axis.set_title(f"Emotion-model throughput, 2 cores of {host} (benchmarks/speed.py)", fontsize=8)
    figure.tight_layout()
    figure.savefig(IMAGES / "speed-cpu.png", dpi=110)
    plt.close(figure)


def peers_chart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((REPO / "benchmarks" / "results" / "peers.json").read_text())
    rows = list(data["emolens"]) + ([data["fer"]] if isinstance(data["fer"], dict) else [])
    names = [r["name"].removesuffix(", yunet)").replace("emolens (", "emolens ").replace(" model", "") for r in rows]
    names = [n.split(" (")[0] for n in names]
    colours = ["#4b5bdc" if n.startswith("emolens") else "#d08a2a" for n in names]
    figure, (speed, quality) = plt.subplots(1, 2, figsize=(11, 0.42 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))
    speed.barh(y, [r["median_ms"] for r in rows], color=colours)
    for i, r in enumerate(rows):
        speed.text(r["median_ms"], i, f" {r['median_ms']:.0f} ms", va="center", fontsize=8)
    speed.set_yticks(y, names, fontsize=8)
    speed.invert_yaxis()
    speed.set_xlabel("median ms, 640x480 photo with 6 faces (lower is better)", fontsize=8)
    height = 0.38
    quality.barh(y - height / 2, [r["consensus_accuracy"] for r in rows], height, color=colours, label="FER+ majority")
    quality.barh(y + height / 2, [r["accuracy"] for r in rows], height, color=colours, alpha=0.45, label="original")
    for i, r in enumerate(rows):
        quality.text(
            r["consensus_accuracy"], i - height / 2, f" {r['consensus_accuracy']:.1%}", va="center", fontsize=7
        )
        quality.text(r["accuracy"], i + height / 2, f" {r['accuracy']:.1%}", va="center", fontsize=7, color="#555")
    quality.set_xlim(0, 1)
    quality.set_xlabel("FER2013 val accuracy: FER+ majority (dark), original label (light)", fontsize=8)
    figure.suptitle(
        f"emolens and the fer package on 2 cores of {data.get('machine', {}).get('cpu', 'the reference CPU')}\n"
        f"(benchmarks/peers.py, {data['crops']:,} crops)",  # two lines: a long CPU name must not run off the page
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(IMAGES / "peers.png", dpi=110)
    plt.close(figure)


def _curve_rows() -> list[dict[str, Any]]:
    """The rows of docs/training.md's trade-off table, each tied to the recipe it shifts."""
    text = (REPO / "docs" / "training.md").read_text()
    section = text.split("### Measured: the trade-off curve", 1)[1].split("What this shows:", 1)[0]
    rows: list[dict[str, Any]] = []
    recipe = ""
    for line in section.splitlines():
        cells = [c.strip().strip("*").strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[2].endswith("%"):
            continue
        model, text_recipe = cells[0], cells[1]
        shifted = text_recipe.startswith("the same, prior shift")
        if not shifted:
            recipe = f"{model}: {text_recipe}"
        rows.append(
            {
                "model": model,
                "recipe": recipe,
                "consensus": float(cells[2].rstrip(" %")),
                "ckplus": float(cells[5].rstrip(" %")),
                "shift": float(found[1]) if (found := re.search(r"prior shift ([\d.]+)", text_recipe)) else 0.0,
                "ships": "ships" in model,
                "before": "(before)" in text_recipe,
            }
        )
    return rows


def tradeoff_chart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _curve_rows()
    colours = {"fast": "#d08a2a", "default": "#4b5bdc", "large": "#2a9d5b"}
    figure, axis = plt.subplots(figsize=(8.6, 5.4))
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    for recipe in recipes:
        points = [r for r in rows if r["recipe"] == recipe]
        first = points[0]["model"].split()[0]  # "fer2013-fast", "default", "lite0": all but students are teachers
        family = next((k for k in ("fast", "default") if k in first), "large")
        if points[0]["before"]:
            axis.scatter(points[0]["ckplus"], points[0]["consensus"], marker="s", color=colours[family], s=36, zorder=3)
            axis.annotate(
                points[0]["model"],
                (points[0]["ckplus"], points[0]["consensus"]),
                fontsize=7,
                xytext=(4, -10),
                textcoords="offset points",
            )
            continue
        points.sort(key=lambda r: r["shift"])  # a line runs through the shifts in order
        distilled = "distilled from the" in recipe
        axis.plot(
            [p["ckplus"] for p in points],
            [p["consensus"] for p in points],
            marker="o",
            markersize=3,
            linewidth=1.6 if distilled else 0.9,
            linestyle="-" if "logit adjustment" in recipe else ":",
            color=colours[family],
            alpha=1.0 if distilled or family == "large" else 0.55,
        )
        for p in points:
            if p["ships"]:
                axis.scatter(
                    p["ckplus"],
                    p["consensus"],
                    marker="*",
                    s=170,
                    color=colours[family],
                    zorder=4,
                    edgecolor="black",
                    linewidth=0.6,
                )
                axis.annotate(
                    p["model"],
                    (p["ckplus"], p["consensus"]),
                    fontsize=7.5,
                    weight="bold",
                    xytext=(6, -12) if family == "default" else (6, 4),  # default and large ship close together
                    textcoords="offset points",
                )
    for family, colour in colours.items():
        axis.plot([], [], color=colour, label="large and other teachers" if family == "large" else family)
    axis.plot([], [], marker="s", linestyle="", color="#777", label="FER2013-trained predecessor")
    axis.plot([], [], marker="*", linestyle="", color="#777", markersize=11, label="shipped")
    axis.set_xlabel("CK+ accuracy, % (posed faces with FACS labels: the guard)")
    axis.set_ylabel("FER2013 val consensus accuracy, % (FER+ majority)")
    axis.set_title(
        "Consensus accuracy against CK+ accuracy: one line per recipe through its prior shifts\n"
        "(docs/training.md; thick: distilled from teachers; dotted: without logit adjustment)",
        fontsize=9,
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(IMAGES / "tradeoff.png", dpi=110)
    plt.close(figure)


def data_flow() -> None:
    """The architecture page's picture: front ends -> Analyzer pipeline -> results; weights beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    figure, axis = plt.subplots(figsize=(11, 5.6))
    axis.set(xlim=(0, 11), ylim=(0, 5.6))
    axis.axis("off")

    def box(x: float, y: float, w: float, title: str, text: str, colour: str) -> tuple[float, float, float]:
        axis.add_patch(FancyBboxPatch((x, y), w, 0.82, boxstyle="round,pad=0.04", fc=colour, ec="#1d2330", lw=0.8))
        axis.text(x + w / 2, y + 0.56, title, ha="center", va="center", fontsize=9, weight="bold", family="monospace")
        axis.text(x + w / 2, y + 0.24, text, ha="center", va="center", fontsize=7.2, color="#333")
        return x, y, w

    def arrow(start: tuple[float, float], end: tuple[float, float]) -> None:
        axis.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, color="#1d2330", lw=0.9))

    front = "#e8ecff"
    stage = "#fff4d6"
    store = "#e3f4e6"
    out = "#fde6e6"
    fronts = [
        ("analyze()", "Python, cached Analyzers"),
        ("emolens CLI", "analyze, video, evaluate"),
        ("emolens serve", "REST + web app"),
        ("emolens batch", "local pool or Ray"),
        ("analyze_video", "frames, tracks"),
    ]
    for i, (title, text) in enumerate(fronts):
        box(0.2 + i * 2.15, 4.6, 1.95, title, text, front)
        arrow((1.175 + i * 2.15, 4.56), (1.175 + i * 2.15, 4.22))
    pipeline = [
        ("load_image", "checked BGR array\nsize from header"),
        ("Detector.detect", "boxes, landmarks\n(registry: yunet ...)"),
        ("face_crop", "square, eyes level"),
        ("EmotionModel", "preprocess, forward,\ncalibrated softmax"),
        ("AnalysisResult", "frozen Faces, to_dict,\nto_dataframe"),
    ]
    for i, (title, text) in enumerate(pipeline):
        colour = out if i == len(pipeline) - 1 else stage
        box(0.2 + i * 2.15, 2.9, 1.95, title, text, colour)
        if i:
            arrow((0.2 + i * 2.15 - 0.2, 3.31), (0.2 + i * 2.15, 3.31))
    axis.add_patch(FancyBboxPatch((0.2, 3.86), 10.55, 0.32, boxstyle="round,pad=0.02", fc="#f1f1f1", ec="#888", lw=0.6))
    axis.text(
        5.475,
        4.02,
        "Analyzer: one detector + one model, shared by every front end",
        ha="center",
        va="center",
        fontsize=8.5,
    )
    arrow((1.175, 3.84), (1.175, 3.76))
    loading = [
        ("resolve_model", "name, card .json,\nweights, run folder"),
        ("weights.fetch", "bundled / cached /\ndownloaded, SHA-256"),
        ("build_model", "registered architecture\n+ its weights"),
        ("load_model", "EmotionModel +\ncalibration"),
    ]
    for i, (title, text) in enumerate(loading):
        box(0.2 + i * 2.15, 0.9, 1.95, title, text, store)
        if i:
            arrow((0.2 + i * 2.15 - 0.2, 1.31), (0.2 + i * 2.15, 1.31))
    arrow((7.425, 1.74), (7.1, 2.88))
    axis.text(0.2, 0.45, "model loading (models/_load.py): nothing read from disk or network runs code", fontsize=8)
    axis.text(0.2, 2.6, "the pipeline (_analyzer.py): one direction, no back and forth", fontsize=8)
    figure.tight_layout()
    figure.savefig(IMAGES / "data-flow.png", dpi=110)
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


def _reliability() -> list[str]:
    from .testdata import SHARED

    val = SHARED / "datasets" / "fer2013" / "val"
    if not val.is_dir():
        print(f"skipped the reliability diagrams: {val} is missing")
        return []
    return reliability_diagrams(val)


def _writing(draw: Callable[[], None], *names: str) -> Callable[[], list[str]]:
    """A figure function that returns nothing, as one that names the files it wrote."""

    def run() -> list[str]:
        draw()
        return list(names)

    return run


#: Every figure by the name ``python -m tools.figures NAME`` takes; each returns the files it wrote.
FIGURES: dict[str, Callable[[], list[str]]] = {
    "demo": _writing(annotated_demo, "annotated-demo.png", "annotated-demo.txt"),
    "confusion": confusion_matrices,
    "reliability": _reliability,
    "speed": _writing(speed_chart, "speed-cpu.png"),
    "tradeoff": _writing(tradeoff_chart, "tradeoff.png"),
    "dataflow": _writing(data_flow, "data-flow.png"),
    "peers": _writing(peers_chart, "peers.png"),
    "video": _writing(video_timeline, "video-timeline.png"),
}


def main(argv: list[str] | None = None) -> None:
    """Write every figure, or only those named (``python -m tools.figures reliability speed``)."""
    import sys

    names = (sys.argv[1:] if argv is None else argv) or list(FIGURES)
    unknown = [name for name in names if name not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names:
        written = FIGURES[name]()
        if written:
            print("wrote", ", ".join(written))


if __name__ == "__main__":
    main()
