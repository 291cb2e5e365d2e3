"""Peer comparison: emolens against the `fer` package on the same photo and the same FER2013 val crops.

    python benchmarks/peers.py [--fer-python PATH] [--per-class N] [--repeat N] [--rounds N]

`fer` (TensorFlow, Haar + mini-Xception) is never an emolens dependency. It runs in its own
interpreter (``--fer-python``, e.g. a separate virtual environment's ``bin/python``; default: this
one), through ``_peer_fer.py``. Without it the peer rows are skipped with a note.
Reported side by side: latency of one call on a 640x480 photo (and the ratio emolens / peer), faces
found, and accuracy on FER2013 val crops given as whole-crop face boxes.

The peer's worker stays up for the whole run, and the photo's calls are timed in interleaved rounds (the peer,
then each emolens configuration, ``--rounds`` times): on a shared host whose load drifts over a run, a ratio
of two blocks timed minutes apart moves by a third from one run to the next; in rounds the drift weighs on
both sides alike. Each ratio comes with the middle half of its per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from _common import machine, samples_ms, shared_path, summary_ms, thread_env_note, write_results

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


#: Seconds between two timing blocks: long enough for the idle threads of the side that just ran (libgomp's and
#: TensorFlow's spin for a while after a call) to stop before the other side is timed.
PAUSE_S = 0.05


class Prepared(NamedTuple):
    """An emolens configuration loaded and scored, ready to be timed."""

    analyzer: emolens.Analyzer
    row: dict[str, Any]


def emolens_row(config: Config, photo: np.ndarray, crops: Crops) -> Prepared:
    """The configuration's analyzer (warmed up), the faces it finds on the photo and its accuracy on the crops."""
    model = emolens.load_model(config.model, precision=config.precision, tta=config.tta)
    if config.tta_margin is not None:
        model = model.with_options(tta_margin=config.tta_margin)
    analyzer = emolens.Analyzer(model=model, detector_options=config.detector_options)
    analyzer.warmup()
    row = {
        "name": f"emolens ({config.label}, {analyzer.detector_name})",
        "model": config.model,
        "config": config._asdict(),
        "tta": model.tta,
        "faces": len(analyzer.analyze(photo, fallback=False).faces),
        **scores(crop_predictions(model, crops), crops),
    }
    return Prepared(analyzer, row)


class FerWorker:
    """The peer in its own interpreter (``_peer_fer.py``), kept up so its timings interleave with emolens'."""

    def __init__(self, python: str, photo_path: Path, crops: Crops, scratch: Path) -> None:
        request = scratch / "request.json"
        request.write_text(json.dumps({"photo": str(photo_path), "crops": crops.paths}))
        self._stderr = (scratch / "fer-stderr.txt").open("w+")
        self._process = subprocess.Popen(
            [python, str(HERE / "_peer_fer.py"), str(request)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self.ready = self._ask(None)
        except BaseException:
            self.close()
            raise

    def _ask(self, command: str | None) -> dict[str, Any]:
        """The worker's answer to ``command``; RuntimeError (with the last line it wrote to stderr) if it died
        or answered something else."""
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            if command is not None:
                self._process.stdin.write(command + "\n")
                self._process.stdin.flush()
            line = self._process.stdout.readline()
            answer = json.loads(line) if line else None
        except (OSError, ValueError):
            answer = None
        if not isinstance(answer, dict) or "error" in answer:
            self._stderr.seek(0)
            lines = self._stderr.read().strip().splitlines()
            said = answer["error"] if isinstance(answer, dict) else lines[-1] if lines else "no answer"
            raise RuntimeError(said)
        return answer

    def time(self, calls: int) -> list[float]:
        samples: list[float] = self._ask(f"time {calls}")["ms"]
        return samples

    def crop_predictions(self) -> dict[str, list[int]]:
        return self._ask("crops")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stderr.close()


def timed_block(fn: Any, calls: int) -> list[float]:
    """Milliseconds of ``calls`` calls of ``fn`` after a pause and one untimed call (as the peer's worker times
    its blocks: a first call after the pause is skipped on both sides)."""
    time.sleep(PAUSE_S)
    fn()
    return samples_ms(fn, calls)


def interleaved_timings(
    prepared: list[Prepared], photo: np.ndarray, peer: FerWorker | None, rounds: int, calls: int
) -> tuple[list[list[list[float]]], list[list[float]]]:
    """Per configuration and per round, the milliseconds of ``calls`` calls on the photo; the same for the peer.

    Each round times the peer, then every configuration: a drift in the host's load over the run weighs on
    all of them alike, instead of on whichever was timed while the host was busy.
    """
    ours: list[list[list[float]]] = [[] for _ in prepared]
    theirs: list[list[float]] = []
    for _ in range(rounds):
        if peer is not None:
            time.sleep(PAUSE_S)
            peer.time(1)  # the untimed first call of the block
            theirs.append(peer.time(calls))
        for samples, entry in zip(ours, prepared, strict=True):
            samples.append(timed_block(lambda analyzer=entry.analyzer: analyzer.analyze(photo), calls))
    return ours, theirs


def timings_with_peer(
    prepared: list[Prepared], photo: np.ndarray, worker: FerWorker | str, rounds: int, calls: int
) -> tuple[list[list[list[float]]], list[list[float]], str | None]:
    """:func:`interleaved_timings`, and a note instead of the peer's timings if its worker fails on the way
    (emolens' rows are timed again without it rather than lost)."""
    if isinstance(worker, str):
        return (*interleaved_timings(prepared, photo, None, rounds, calls), worker)
    try:
        return (*interleaved_timings(prepared, photo, worker, rounds, calls), None)
    except RuntimeError as exc:
        return (*interleaved_timings(prepared, photo, None, rounds, calls), f"`fer` failed: {exc}")


def peer_row(peer: FerWorker, timing: list[list[float]], crops: Crops) -> dict[str, Any]:
    """The peer's row: its timings and its better crop accuracy of the two padding settings."""
    answer = peer.crop_predictions()
    padded, unpadded = (scores(np.array(answer[k]), crops) for k in ("default_offsets", "no_offsets"))
    best = max(padded, unpadded, key=lambda row: row["accuracy"])  # chosen on the original labels
    return {
        "name": f"fer {peer.ready['fer_version']} (Haar + mini-Xception, TFLite)",
        "faces": peer.ready["faces"],
        **summary_ms(ms for block in timing for ms in block),
        **best,
        "accuracy_default_offsets": padded["accuracy"],
        "accuracy_no_offsets": unpadded["accuracy"],
    }


def peer_note_or_row(peer: FerWorker | str, timing: list[list[float]], crops: Crops) -> dict[str, Any] | str:
    """The peer's row, or a note if it fails while scoring the crops."""
    if isinstance(peer, str):
        return peer
    try:
        return peer_row(peer, timing, crops)
    except RuntimeError as exc:
        return f"`fer` failed: {exc}"


def start_peer(python: str, photo_path: Path, crops: Crops, scratch: Path) -> FerWorker | str:
    """The peer's worker, or a note saying why there is none."""
    probe = subprocess.run([python, "-c", "import fer"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`fer` is not importable by {python}: peer rows skipped (pass --fer-python)"
    try:
        return FerWorker(python, photo_path, crops, scratch)
    except RuntimeError as exc:
        return f"`fer` failed: {exc}"


def spread(ratios: list[float]) -> str:
    """The middle half of the per-round ratios, e.g. ``"rounds: x0.13-x0.16, middle half of 10"``."""
    low, high = np.percentile(ratios, [25, 75])
    return f"rounds: x{low:.2f}-x{high:.2f}, middle half of {len(ratios)}"


def ratio_rounds(ours: list[list[float]], theirs: list[list[float]]) -> list[float]:
    """Per round, the median of our calls over the median of the peer's."""
    return [statistics.median(a) / statistics.median(b) for a, b in zip(ours, theirs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", default=sys.executable, help="Python interpreter that can import fer")
    parser.add_argument("--per-class", type=int, help="val crops per class (default: all 3,589)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls on the photo per configuration (at least)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the calls are spread over")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--repeat and --rounds must be at least 1")

    photo = cv2.resize(
        cv2.imread(str(shared_path("images", "group", "multiface.jpg"))), (640, 480), interpolation=cv2.INTER_AREA
    )
    crops = val_crops(args.per_class)
    bundled = [spec.name for spec in MODELS.specs() if spec.weights and spec.weights[0].bundled]
    configs = [Config(name) for name in bundled] + [c for c in SPEED_CONFIGS if c.model in bundled]
    prepared = [emolens_row(config, photo, crops) for config in configs]
    rows = [entry.row for entry in prepared]
    calls = max(1, -(-args.repeat // args.rounds))
    with tempfile.TemporaryDirectory() as tmp:
        photo_path = Path(tmp) / "photo.png"
        cv2.imwrite(str(photo_path), photo)
        worker = start_peer(args.fer_python, photo_path, crops, Path(tmp))
        try:
            ours, theirs, note = timings_with_peer(prepared, photo, worker, args.rounds, calls)
            for row, timing in zip(rows, ours, strict=True):
                row.update(summary_ms(ms for block in timing for ms in block))
                if theirs:
                    row["ratio_rounds"] = ratio_rounds(timing, theirs)
            peer: dict[str, Any] | str = note or peer_note_or_row(worker, theirs, crops)
        finally:
            if isinstance(worker, FerWorker):
                worker.close()

    command = "python benchmarks/peers.py" + (f" --per-class {args.per_class}" if args.per_class else "")
    command += f" --repeat {args.repeat}" if args.repeat != 30 else ""
    command += f" --rounds {args.rounds}" if args.rounds != 10 else ""
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
            f"- {r['name']} / fer: latency x{r['median_ms'] / peer['median_ms']:.2f} ({spread(r['ratio_rounds'])}), "
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
