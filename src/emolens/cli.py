"""The ``emolens`` command line: analyze, video, models, download, evaluate, train, export.

Every failure the user can fix prints one ``emolens: error: ...`` line and exits non-zero;
no traceback reaches the terminal for bad input.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._argtypes import json_object as _json_object
from ._argtypes import positive_int as _positive_int
from ._argtypes import unit_interval as _unit_interval
from .errors import EmolensError
from .serve._config import ServeConfig
from .training._config import add_train_arguments, train_config_from_args

__all__ = ["build_parser", "main"]

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _err(message: str) -> None:
    print(f"emolens: error: {message}", file=sys.stderr)


def _expand(paths: Sequence[str]) -> Iterator[tuple[str, Path | None]]:
    """Each argument as files: a file, the images of a folder (recursively) or a glob's matches.

    Yields (argument, path) pairs; path is None for an argument that matched nothing.
    """
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
        elif any(ch in arg for ch in "*?[") and not path.exists():
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
        else:
            files = [path]
        if not files:
            yield arg, None
        for file in files:
            yield arg, file


def _detector_arg(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _output_file(option: str, value: str | None) -> None:
    """An output file's folder must exist and be writable, and the path must not be a folder (checked up front)."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise EmolensError(f"{option} {value}: is a folder; name a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise EmolensError(f"{option} {value}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise EmolensError(f"{option} {value}: folder {folder} is not writable")


def _output_folder(value: str | None) -> Path | None:
    """An output folder, created and checked before any work starts (EmolensError otherwise)."""
    if value is None:
        return None
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise EmolensError(f"--annotate {value}: exists and is not a folder; name a folder to write images into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".emolens-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EmolensError(f"--annotate {value}: cannot write there ({exc.strerror or exc})") from None
    return folder


def _error_record(source: str, exc: BaseException) -> str:
    """The --json line for an input that failed: same top-level shape as a result, with an error object."""
    return json.dumps(
        {"source": source, "error": {"type": type(exc).__name__, "message": str(exc)}}, ensure_ascii=False
    )


def _cmd_analyze(args: argparse.Namespace) -> int:
    import cv2

    from ._analyzer import Analyzer
    from ._draw import annotate

    out_dir = _output_folder(args.annotate)  # before the models load: a bad folder fails at once
    analyzer = Analyzer(
        _detector_arg(args.detector),
        args.model,
        device=args.device,
        fallback=not args.no_fallback,
        detector_options=args.detector_options,
    )
    inputs = list(_expand(args.paths))
    files = [path for _, path in inputs if path is not None]
    # Annotated copies keep the inputs' folder structure below their common folder: a/x.jpg, b/x.jpg stay apart.
    common = Path(os.path.commonpath([str(p.resolve().parent) for p in files])) if files else Path()
    failures = 0
    for arg, path in inputs:
        if path is None:
            failures += 1
            message = f"no images match {arg!r}"
            print(_error_record(arg, EmolensError(message)), flush=True) if args.json else _err(message)
            continue
        try:
            result = analyzer.analyze(path)
        except EmolensError as exc:
            failures += 1
            print(_error_record(str(path), exc), flush=True) if args.json else _err(str(exc))
            continue
        if args.json:
            print(result.to_json(), flush=True)
        else:
            _print_table(path, result)
        if out_dir is not None:
            target = out_dir / path.resolve().relative_to(common)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), annotate(path, result)):
                failures += 1
                _err(f"could not write {target} (is its suffix an image format?)")
    return 1 if failures else 0


def _print_table(path: Path, result: object) -> None:
    from .types import AnalysisResult

    assert isinstance(result, AnalysisResult)
    count = len(result.faces)
    print(
        f"{path}  {result.image_width}x{result.image_height}  detector={result.detector}  "
        f"{count} face{'s' if count != 1 else ''}  {result.timings_ms.get('total', 0):.0f} ms"
    )
    va = any(face.valence is not None for face in result.faces)
    if count:
        extra = f"  {'valence':>7} {'arousal':>7}" if va else ""
        print(f"  {'#':>2}  {'box x,y,w,h':<20} {'emotion':<9} {'prob':>5}  {'second':<15}{extra}")
    for i, face in enumerate(result.faces, 1):
        ranked = sorted(face.scores.items(), key=lambda kv: kv[1], reverse=True)
        second = f"{ranked[1][0]} {ranked[1][1]:.2f}" if len(ranked) > 1 else ""
        box = f"{face.box.x},{face.box.y},{face.box.width},{face.box.height}"
        note = "  (whole image: no face found)" if face.fallback else ""
        extra = f"  {face.valence or 0.0:>+7.2f} {face.arousal or 0.0:>+7.2f}" if va else ""
        print(f"  {i:>2}  {box:<20} {face.label:<9} {face.confidence:>5.2f}  {second:<15}{extra}{note}")


def _cmd_video(args: argparse.Namespace) -> int:
    import time

    from ._analyzer import Analyzer
    from .video import AnnotatedVideoWriter, VideoAnalysis, analyze_video, open_source

    source: str | int = int(args.source) if args.source.lstrip("-").isdigit() else args.source
    for option, value in (("--csv", args.csv), ("--plot", args.plot), ("--out", args.out)):
        _output_file(option, value)  # before any frame is analysed: a bad path must not cost the whole video
    if args.plot:
        from ._optional import require

        require("matplotlib", extra="plot", feature="--plot")
    frames = open_source(source)  # fails early, with a clear error, for a missing file or camera
    total = frames.frame_count
    if total is not None:
        total = -(-total // args.every)
        if args.max_frames is not None:
            total = min(total, args.max_frames)
    analyzer = Analyzer(
        _detector_arg(args.detector),
        args.model,
        device=args.device,
        fallback=False,
        detector_options=args.detector_options,
    )
    analysis = VideoAnalysis()
    writer: AnnotatedVideoWriter | None = None
    started = time.perf_counter()
    interrupted = False
    try:
        stream = analyze_video(
            frames, every=args.every, smoothing=args.smoothing, max_frames=args.max_frames, analyzer=analyzer
        )
        for frame in stream:
            analysis.add(frame)
            if args.out:
                if writer is None:
                    writer = AnnotatedVideoWriter(args.out, frames.fps / args.every, (frame.width, frame.height))
                writer.write(frame)
            if not args.quiet:
                _progress(analysis.frames, total, time.perf_counter() - started)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer is not None:
            writer.close()
        if not args.quiet:
            print(file=sys.stderr)
    if args.csv:
        analysis.to_csv(args.csv)
    if args.plot:
        analysis.plot_timeline(args.plot)
    for summary in analysis.summary().values():
        shares = ", ".join(f"{label} {s:.0%}" for label, s in summary.shares.items() if s >= 0.05)
        print(
            f"track {summary.track_id}: {summary.frames} frames, {summary.first_time:.1f}-{summary.last_time:.1f} s, "
            f"mostly {summary.dominant} ({shares})"
        )
    if interrupted:
        _err(f"interrupted after {analysis.frames} frames; outputs hold everything collected so far")
        return 130
    return 0


def _progress(done: int, total: int | None, seconds: float) -> None:
    fps = done / seconds if seconds > 0 else 0.0
    if total:
        eta = (total - done) / fps if fps > 0 else 0.0
        line = f"\r{done}/{total} frames  {fps:.1f} FPS  ETA {eta:.0f} s "
    else:
        line = f"\r{done} frames  {fps:.1f} FPS "
    print(line, end="", file=sys.stderr, flush=True)


def _cmd_models(args: argparse.Namespace) -> int:
    from ._weights import cache_dir, is_available
    from .detectors import DETECTORS
    from .models import MODELS

    def status(weights: Sequence[object]) -> str:
        from ._registry import WeightsFile

        files = [w for w in weights if isinstance(w, WeightsFile)]
        if not files:
            return "no weights needed"
        if all(w.bundled for w in files):
            return "bundled" if all(is_available(w) for w in files) else "bundled file missing"
        return "cached" if all(is_available(w) for w in files) else "not downloaded"

    print("Detectors (also: auto, none)")
    for d in DETECTORS.specs():
        extra = f" [extra: {d.extra}]" if d.extra else ""
        print(f"  {d.name:<22} {status(d.weights):<18} {d.description}{extra}")
    print("Emotion models")
    for m in MODELS.specs():
        print(f"  {m.name:<22} {status(m.weights):<18} {m.description}")
        outputs = f"{m.label_set.name} labels ({', '.join(m.labels)})" + (
            ", valence, arousal" if m.valence_arousal else ""
        )
        print(f"  {'':<22} {'':<18} outputs: {outputs}; input: {m.input.describe()}; runtime: {m.runtime}")
        if m.runtime == "onnx":
            print(f"  {'':<22} {'':<18} needs: pip install 'emolens[onnx]'")
        if m.license:
            print(f"  {'':<22} {'':<18} license: {m.license}")
    print(f"Weights cache: {cache_dir()}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from . import download
    from ._registry import DetectorSpec, ModelSpec
    from ._weights import fetch
    from .detectors import DETECTORS
    from .models import MODELS

    if not args.names and not args.all:
        _err("name detectors/models to download, or pass --all")
        return 2
    if not args.all:
        for path in download(list(args.names)):
            print(path)
        return 0
    failed = 0
    specs: list[DetectorSpec | ModelSpec] = [*DETECTORS.specs(), *MODELS.specs()]
    for spec in specs:  # every file is tried, and each result reported
        for weights in spec.weights:
            try:
                print(f"{spec.name}: {fetch(weights)}")
            except EmolensError as exc:
                failed += 1
                print(f"{spec.name}: FAILED: {exc}")
    if failed:
        _err(f"{failed} file(s) could not be fetched (see above); the others are ready")
        return 2
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .training._evaluate import evaluate_ensemble

    models = args.model or ["default"]
    name = " + ".join(models)
    ferplus = args.ferplus or "auto"
    evaluation, probabilities, data = evaluate_ensemble(
        models, args.dataset, split=args.split, tta=args.tta, skip_unreadable=not args.strict_data, ferplus=ferplus
    )
    if args.predictions:
        _write_predictions(Path(args.predictions), data, probabilities)
    if args.confusion_png:
        evaluation.plot_confusion(args.confusion_png, title=f"{name} on {Path(args.dataset).name}")
    calibration = None
    if args.cross_fit:  # the model's own probabilities, as `emolens export` calibrates them
        from .training._calibrate import choose_calibration

        _, raw, _ = evaluate_ensemble(
            models,
            args.dataset,
            split=args.split,
            tta=args.tta,
            skip_unreadable=not args.strict_data,
            calibrated=False,
            ferplus=ferplus,
        )
        calibration = choose_calibration(raw, data.labels)
    if args.json:
        from .training._data import CLASS_NAMES

        extra = {"cross_fitted": calibration.to_dict(CLASS_NAMES)} if calibration else {}
        print(json.dumps({"model": name, "dataset": args.dataset, **evaluation.to_dict(), **extra}))
        return 0
    print(f"model {name} on {args.dataset}: {evaluation.count} images")
    consensus, votes = evaluation.consensus, evaluation.votes
    if consensus is not None and votes is not None:
        print(
            f"consensus (FER+ majority, {consensus.count} images with one): accuracy {consensus.accuracy:.4f}   "
            f"mean recall {consensus.mean_recall:.4f}   ECE {consensus.ece:.4f}"
        )
        print(
            f"vote distribution ({votes.count} images): cross-entropy {votes.cross_entropy:.4f}   "
            f"KL {votes.kl:.4f}   soft-label ECE {votes.ece:.4f}"
        )
    label = "original labels: " if consensus is not None else ""
    print(
        f"{label}accuracy {evaluation.accuracy:.4f}   mean recall {evaluation.mean_recall:.4f}   "
        f"ECE {evaluation.ece:.4f}   NLL {evaluation.nll:.4f}"
    )
    print("per-class recall: " + "  ".join(f"{k} {v:.3f}" for k, v in evaluation.per_class_recall.items()))
    print(evaluation.confusion_text())
    if consensus is not None:
        print("consensus per-class recall: " + "  ".join(f"{k} {v:.3f}" for k, v in consensus.per_class_recall.items()))
        print(consensus.confusion_text())
    if calibration:
        ece = calibration.report
        print(
            f"cross-fitted ECE ({calibration.halvings} halvings, before any stored calibration): unscaled "
            f"{ece['ece_uncalibrated']:.4f}, one temperature {ece['ece_cross_fitted_temperature']:.4f}, "
            f"per predicted class {ece['ece_cross_fitted_per_class']:.4f}; "
            f"best: {calibration.method} {calibration.ece:.4f}"
        )
    if data.skipped:
        print(f"skipped {data.skipped} unreadable images")
    return 0


def _write_predictions(path: Path, data: object, probabilities: object) -> None:
    import csv

    import numpy as np

    from .training._data import FaceDataset

    assert isinstance(data, FaceDataset) and isinstance(probabilities, np.ndarray)
    names = data.classes
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "true", "predicted", *names])
        for source, label, row in zip(data.sources, data.labels, probabilities, strict=True):
            writer.writerow([source, names[label], names[int(row.argmax())], *(f"{p:.6f}" for p in row)])


def _without_session_flags(argv: Sequence[str]) -> list[str]:
    """``emolens train`` arguments minus ``--resume`` and ``--stop-after N``, which split a run across
    invocations without changing its result: what a model card should give as the command."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg == "--stop-after":
            skip_value = True
        elif arg != "--resume" and not arg.startswith("--stop-after="):
            kept.append(arg)
    return kept


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    command = "emolens " + " ".join(shlex.quote(a) for a in _without_session_flags(args.argv))
    cfg = train_config_from_args(args, command=command)
    result = train(cfg, resume=args.resume, stop_after=args.stop_after)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 reports
        return 0
    print(
        f"best val {result.selected_by} accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
        f"weights: {result.weights_path}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .training._export import export_run

    card = export_run(
        args.run,
        args.out,
        args.name,
        half=args.half,
        note=args.note,
        registered_as=args.register_as,
        prior_shift=args.prior_shift,
    )
    m = card["metrics"]
    print(
        f"wrote {card['weights_file']} ({card['weights_bytes']:,} bytes, sha256 {card['weights_sha256']}); "
        f"val {m['val']['accuracy']:.4f}, with flip TTA {m['val_tta']['accuracy']:.4f}, "
        f"train {m['train']['accuracy']:.4f}"
    )
    print(f"use it: emolens analyze IMAGE --model {shlex.quote(str(Path(args.out) / (args.name + '.json')))}")
    return 0


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector-options",
        type=_json_object,
        default={},
        metavar="JSON",
        help="detector settings, e.g. '{\"max_side\": 320}' to detect on a downscaled copy (faster)",
    )


_SERVE = ServeConfig()  # the server's defaults, shown in --help
_MODEL_HELP = "emotion model: a registered name, or the .json card of a model written by `emolens export`"
_STRICT_DATA_HELP = "stop at the first unreadable image or malformed CSV row (default: skip and count them)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emolens", description="Facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("analyze", help="detect faces and classify emotions in images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument("--detector", default="auto", help="detector name, 'auto' (default) or 'none' for face crops")
    _add_detector_options(p)
    p.add_argument("--model", default="default", help=_MODEL_HELP)
    p.add_argument("--device", default="cpu", help="torch device for the emotion model")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write copies with boxes and labels drawn into OUT_DIR")
    p.add_argument("--no-fallback", action="store_true", help="report no face instead of classifying the whole image")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("video", help="track faces through a video or webcam and write an emotion timeline")
    p.add_argument("source", help="video file, or a camera index such as 0 for the default webcam")
    p.add_argument("--out", metavar="MP4", help="write an annotated copy (boxes, track ids, emotions)")
    p.add_argument("--csv", metavar="CSV", help="write the timeline: one row per face per frame")
    p.add_argument("--plot", metavar="PNG", help="plot probabilities over time per track (needs emolens[plot])")
    p.add_argument("--every", type=_positive_int, default=1, metavar="N", help="process every N-th frame")
    p.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N processed frames")
    p.add_argument("--smoothing", type=_unit_interval, default=0.6, help="EMA weight of past probabilities (0 = off)")
    p.add_argument("--detector", default="auto")
    _add_detector_options(p)
    p.add_argument("--model", default="default", help=_MODEL_HELP)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_video)

    p = sub.add_parser("models", help="list detectors and emotion models, and whether their weights are present")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("download", help="prefetch weights for offline use")
    p.add_argument("names", nargs="*", metavar="NAME", help="detector or model names")
    p.add_argument("--all", action="store_true", help="every registered detector and model")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("evaluate", help="accuracy, per-class recall and confusion matrix on a labelled dataset")
    p.add_argument("dataset", help="image folder (<emotion>/*.jpg) or FER2013 CSV")
    p.add_argument(
        "--model",
        action="append",
        metavar="MODEL_OR_RUN",
        help="registered model (default: 'default'), exported model card (.json), or run folder of "
        "`emolens train`; repeat to evaluate the ensemble (averaged probabilities)",
    )
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="rows of a FER2013 CSV to use")
    p.add_argument(
        "--ferplus",
        metavar="CSV",
        help="FER+ vote table (or fer2013new.csv for a FER2013 CSV) to also score against the crowd "
        "(default: found beside the data when present)",
    )
    p.add_argument("--tta", dest="tta", action="store_true", default=None, help="average with mirrored faces")
    p.add_argument("--no-tta", dest="tta", action="store_false", help="disable the model's default TTA")
    p.add_argument(
        "--predictions", metavar="CSV", help="write file, true, predicted and a probability per label for each image"
    )
    p.add_argument("--confusion-png", metavar="PNG", help="save the confusion matrix as an image (emolens[plot])")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--cross-fit",
        action="store_true",
        help="also measure calibration as `emolens export` does: ECE with each random half of the data calibrated "
        "by the other (the stored calibration is fitted on val, so there the ECE above is in-sample)",
    )
    p.add_argument("--strict-data", action="store_true", help=_STRICT_DATA_HELP)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", help="train an emotion model", description="Train a registered model architecture.")
    add_train_arguments(p)  # every option of TrainConfig, generated from its fields
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument(
        "--stop-after", type=_positive_int, metavar="N", help="stop this invocation after N epochs (resume later)"
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="export a training run: weights + model card (JSON and Markdown)")
    p.add_argument("run", help="run folder written by `emolens train`")
    p.add_argument("--out", required=True, help="folder for <name>.safetensors, <name>.json and <name>.md")
    p.add_argument("--name", required=True, help="file stem, e.g. emolens-vgg-wide-v3")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("--note", default="", help="provenance note printed in the model card")
    p.add_argument(
        "--register-as",
        metavar="MODEL",
        help="model name the weights will be registered under (default: the model the run trained)",
    )
    p.add_argument(
        "--prior-shift",
        type=_unit_interval,
        default=0.0,
        metavar="TAU",
        help="add TAU * log(training class prior) to the output bias: for runs trained with --logit-adjustment "
        "(0: class-balanced, 1: back to the classes' frequencies; default 0)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "recipe",
        help="train the consensus models: a teacher on FER+ votes, then distilled default and fast (for a GPU)",
        description="Run the consensus recipe (emolens.training._recipe): each stage is an `emolens train` run "
        "in <out>/runs/<stage>, exported to <out> with its model card.",
    )
    p.add_argument("train", help="training data with FER+ votes (image folder with ../ferplus/<split>.csv)")
    p.add_argument("val", help="validation data with FER+ votes")
    p.add_argument("--out", required=True, help="folder for the exported models and the run folders")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--mini", action="store_true", help="a few hundred images, one epoch per stage: a smoke test")
    p.add_argument("--resume", action="store_true", help="continue interrupted stages")
    p.set_defaults(func=_cmd_recipe)

    p = sub.add_parser(
        "batch",
        help="analyse collections of images and videos into one Parquet/CSV/JSONL table (resumable)",
        description="One row per face (one per analysed frame of a video), one row per input with no face or "
        "an error. Re-running with the same --out skips what is done. --engine ray runs on a Ray cluster.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs, or .txt/.csv/.parquet lists")
    p.add_argument("--out", required=True, help="output file: .parquet, .csv or .jsonl (the suffix picks the format)")
    p.add_argument("--format", choices=("table", "submission"), default="table", help="submission: file,label (.csv)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--workers", type=_positive_int, help="worker processes, or Ray actors (default: CPU cores)")
    p.add_argument("--threads", type=_positive_int, help="threads per worker (default: 1 with several workers)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="inputs per task (one forward pass)")
    p.add_argument(
        "--part-size", type=_positive_int, default=256, help="inputs per saved part: the most a killed run loses"
    )
    p.add_argument("--every", type=_positive_int, default=1, metavar="N", help="analyse every N-th video frame")
    p.add_argument("--detector", default="auto", help="detector name, 'auto' (default) or 'none' for face crops")
    p.add_argument("--model", default="default", help=_MODEL_HELP)
    p.add_argument("--device", default="cpu", help="torch device for the emotion model")
    p.add_argument("--no-fallback", action="store_true", help="an image without a face is a row without a face")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    p.add_argument("--address", help="Ray cluster to join: auto, or ray://host:10001 (default: start a local one)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per Ray actor")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser(
        "serve",
        help="serve the REST API and the web app (needs emolens[serve])",
        description="Answer POST /v1/analyze and /v1/analyze/batch, GET /v1/models, /healthz and /readyz, "
        "with the web app at / and the OpenAPI docs at /docs. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument(
        "--host", default=_SERVE.host, help=f"address to listen on (default {_SERVE.host}: this machine only)"
    )
    p.add_argument("--port", type=_positive_int, default=_SERVE.port, help=f"default {_SERVE.port}")
    p.add_argument("--detector", default=_SERVE.detector, help="detector for requests that name none")
    p.add_argument("--model", default=_SERVE.model, help="model for requests that name none; " + _MODEL_HELP)
    p.add_argument(
        "--models",
        type=lambda text: tuple(name for name in text.split(",") if name),
        metavar="NAME,...",
        help="the registered models clients may choose (default: all)",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=_SERVE.workers, help="worker processes, each with its models"
    )
    p.add_argument("--threads", type=_positive_int, default=_SERVE.threads, help="analysis threads per process")
    p.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=_SERVE.max_in_flight,
        help=f"requests per process at once; more get 503 + Retry-After (default {_SERVE.max_in_flight})",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=_SERVE.max_upload_bytes / 2**20,
        help=f"largest request body in MiB (default {_SERVE.max_upload_bytes / 2**20:g})",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=_SERVE.max_pixels / 1e6,
        help=f"largest decoded image (default {_SERVE.max_pixels / 1e6:g})",
    )
    p.add_argument("--max-files", type=_positive_int, default=_SERVE.max_files, help="most files per batch request")
    p.add_argument(
        "--request-timeout",
        type=float,
        default=_SERVE.request_timeout_s,
        help=f"seconds before a slow analysis is answered with 503 (default {_SERVE.request_timeout_s:g})",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=_SERVE.read_timeout_s,
        help=f"seconds to receive a request body before answering 408 (default {_SERVE.read_timeout_s:g})",
    )
    p.add_argument("--no-warmup", action="store_true", help="be ready without a warm-up run")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("dataset", help="build training datasets")
    dataset = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    p = dataset.add_parser(
        "crop",
        help="crop annotated faces from photos into a train/val/test dataset",
        description="Read a CSV/TSV table (image path or URL, optional box x,y,width,height, one or more "
        "annotator label columns), take each face's majority label, crop it and write "
        "<out>/<split>/<label>/*.png, labels.txt, errors.csv and summary.json. Re-running retries only "
        "the rows not written yet.",
    )
    p.add_argument("table", help="CSV or TSV (.tsv) table; image paths are relative to it")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument(
        "--split", type=_ratios, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL[,TEST]", help="default 0.8,0.1,0.1"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stable per-row split")
    p.add_argument("--size", type=_positive_int, default=96, help="side of the saved square crops (pixels)")
    p.add_argument("--margin", type=_unit_interval, default=0.0, help="enlarge each box by this fraction")
    p.add_argument("--detector", default="auto", help="detector for rows without a box ('none': skip them)")
    p.add_argument("--retries", type=_positive_int, default=3, help="tries per image URL")
    p.set_defaults(func=_cmd_dataset_crop)
    return parser


def _cmd_batch(args: argparse.Namespace) -> int:
    from ._batch import batch

    report = batch(
        args.inputs,
        args.out,
        detector=_detector_arg(args.detector),
        model=args.model,
        engine=args.engine,
        workers=args.workers,
        threads=args.threads,
        batch_size=args.batch_size,
        part_size=args.part_size,
        every=args.every,
        fallback=not args.no_fallback,
        device=args.device,
        overwrite=args.overwrite,
        format=args.format,
        progress=False if args.quiet else None,
        address=args.address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
    )
    resumed = f" ({report.skipped} already done)" if report.skipped else ""
    print(
        f"{report.analysed} inputs analysed{resumed}: {report.faces} faces, {report.errors} errors "
        f"in {report.seconds:.1f} s; {len(report.rows)} rows in {report.out}"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    config = ServeConfig(
        host=args.host,
        port=args.port,
        detector=args.detector,
        model=args.model,
        models=args.models,
        workers=args.workers,
        threads=args.threads,
        max_in_flight=args.max_in_flight,
        max_upload_bytes=max(1, int(args.max_upload_mb * 2**20)),
        max_pixels=max(1, int(args.max_megapixels * 1e6)),
        max_files=args.max_files,
        request_timeout_s=args.request_timeout,
        read_timeout_s=args.read_timeout,
        warmup=not args.no_warmup,
    )
    serve(config)
    return 0


def _cmd_recipe(args: argparse.Namespace) -> int:
    from .training._recipe import run_recipe

    cards = run_recipe(args.train, args.val, args.out, device=args.device, mini=args.mini, resume=args.resume)
    for card in cards:
        default = card["metrics"]["val_tta" if card["default_tta"] else "val"]
        consensus = default.get("consensus", {}).get("accuracy", float("nan"))
        print(f"{card['name']}: val consensus {consensus:.4f}, original {default['accuracy']:.4f}")
    return 0


def _ratios(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 2 or 3 comma-separated fractions, got {text!r}") from None
    if len(values) not in (2, 3) or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected 2 or 3 non-negative fractions summing to 1, got {text!r}")
    return values


def _cmd_dataset_crop(args: argparse.Namespace) -> int:
    from .training._crop_dataset import build_crop_dataset

    summary = build_crop_dataset(
        args.table,
        args.out,
        ratios=args.split,
        seed=args.seed,
        size=args.size,
        margin=args.margin,
        detector=None if args.detector == "none" else args.detector,
        retries=args.retries,
    )
    for split, counts in sorted(summary.written.items()):
        print(f"{split}: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    print(
        f"labels: {', '.join(summary.labels)}; already done {summary.already_done}; set aside (no majority) "
        f"{summary.no_majority}; failed {summary.failed} (see {Path(args.out) / 'errors.csv'})"
    )
    return 0


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emolens`` command; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in model cards
    with warnings.catch_warnings():  # one-line warnings, for this command only
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            code: int = args.func(args)
        except EmolensError as exc:
            _err(str(exc))
            return 2
        except KeyboardInterrupt:
            _err("interrupted")
            return 130
        except BrokenPipeError:  # e.g. `emolens evaluate ... | head`: stop quietly, like other tools
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as exc:  # a file the command writes (CSV, plot, folder) could not be written
            _err(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
            return 2
        except Exception as exc:  # never a traceback for a user; EMOLENS_DEBUG=1 shows it
            if os.environ.get("EMOLENS_DEBUG"):
                raise
            hint = "a bug in emolens, please report it; EMOLENS_DEBUG=1 shows where"
            _err(f"unexpected {type(exc).__name__}: {exc} ({hint})")
            return 70
    return code


def _show_warning(message: Warning | str, category: type[Warning], *_args: object, **_kwargs: object) -> None:
    print(f"{message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
