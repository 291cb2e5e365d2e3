"""Speed benchmark: emotion-model throughput, end-to-end latency, cold start, import time, memory.

python benchmarks/speed.py [--device cpu|cuda] [--out benchmarks/results]

Every row is measured in a fresh process (``--row``), twice, so no row depends on what ran before
it; a row whose two runs differ by more than the spread of their samples (p95 - median) is marked
unstable in the table. Models whose weights are not on this machine (downloaded on first use) are
skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import machine, shared_path, thread_env_note, time_ms, write_results

import emolens
from emolens import EmotionModel
from emolens.models import MODELS
from emolens.weights import is_available

# Peak memory comes from /proc/self/status (VmHWM), not getrusage: on Linux a child's ru_maxrss starts at
# its parent's peak (it is kept across exec), which would report this benchmark's own memory.
_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
import emolens
t1 = time.perf_counter()
emolens.analyze(sys.argv[1], device=sys.argv[2])
t2 = time.perf_counter()
for _ in range(50):
    emolens.analyze(sys.argv[1], device=sys.argv[2])
try:
    status = open("/proc/self/status").read().splitlines()
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except OSError:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS; may include the parent's peak)
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
print(json.dumps({"import_s": t1 - t0, "cold_start_s": t2 - t0, "peak_rss_mb": peak_mb}))
"""


def flops_per_face(model: EmotionModel) -> float:
    """Floating-point operations of one forward pass on one crop (a multiply-add counts as 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.network(torch.zeros(1, 1, model.input_size, model.input_size, device=model.device))
    return float(counter.get_total_flops())


def _autocast(model: EmotionModel) -> EmotionModel:
    """``model`` (torch, bf16) as it ran before emolens kept a bf16 copy of the network: bf16 autocast over the
    float32 network, every weight cast on every call (``TorchRuntime`` without ``bf16_copy``); the same answers,
    bit for bit, compared side by side in one run."""
    from emolens.models import TorchRuntime

    runtime = TorchRuntime(model.network)
    calibration = model.temperatures
    return EmotionModel(
        model.spec, runtime, device=model.device, tta=model.tta, temperatures=calibration, identity=model.identity
    )


#: The runtime a model runs on by default: bf16 where the device computes it natively, else float32.
DEFAULT_RUNTIMES = ("torch bf16", "torch float32")


def runtimes(name: str, device: str, tta: bool, scratch: Path) -> list[tuple[str, EmotionModel]]:
    """The ways this host can run the model: torch float32, torch bf16 (where native; on a CPU also as autocast
    over the float32 network, how it ran before the bf16 copy), ONNX Runtime int8 (where it ships: the network
    alone, emolens runs the TTA around it as for torch), and, at the model's default TTA setting, ONNX Runtime
    float32 (`emolens export --onnx`, which mirrors every face inside the graph)."""
    from emolens.models import cpu_has_native_bf16, export_onnx

    spec = MODELS.get(name)
    found = [("torch float32", emolens.load_model(name, device=device, tta=tta, precision="float32"))]
    if device.startswith("cuda") or cpu_has_native_bf16():
        found.append(("torch bf16", emolens.load_model(name, device=device, tta=tta)))
    if not device.startswith("cuda") and cpu_has_native_bf16():
        found.append(("torch bf16 autocast", _autocast(found[-1][1])))
    if spec.runtime == "torch":
        try:
            if tta == spec.tta:
                export_onnx(name, scratch, f"{name}-fp32")
                found.append(("onnx float32", emolens.load_model(str(scratch / f"{name}-fp32.json"), device=device)))
            if spec.int8:
                found.append(("onnx int8", emolens.load_model(name, device=device, tta=tta, precision="int8")))
        except emolens.MissingDependencyError:  # no onnxruntime here: the torch rows only
            pass
    return found


def model_throughput(name: str, device: str, repeat: int) -> list[dict[str, Any]]:
    import tempfile

    rows = []
    # 64 val faces of every class (every 50th file): flip TTA mirrors only the uncertain faces, so a batch of
    # one class (the happy faces this used to take, mostly certain) would flatter it
    faces = [
        cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        for p in sorted(shared_path("datasets", "fer2013", "val").glob("*/*.jpg"))[::50][:64]
    ]
    for tta in (False, True):
        with tempfile.TemporaryDirectory() as scratch:
            variants = runtimes(name, device, tta, Path(scratch))
            torch_model = variants[0][1]
            params = sum(p.numel() for p in torch_model.network.parameters())
            flops = flops_per_face(torch_model)
            for runtime, model in variants:
                for batch in (1, 64):
                    crops = faces[:batch]
                    t = time_ms(lambda crops=crops, model=model: model.predict(crops), repeat=repeat, warmup=3)
                    rows.append(
                        {
                            "model": name,
                            "runtime": runtime,
                            "tta": tta,
                            "batch": batch,
                            "params": params,
                            "mflops": flops / 1e6,
                            "faces_per_s": batch / t["median_ms"] * 1e3,
                            **t,
                        }
                    )
    return rows


def end_to_end(
    model: str, device: str, repeat: int, max_side: int | None = None, precision: str = "auto"
) -> dict[str, Any]:
    photo = cv2.imread(str(shared_path("images", "group", "multiface.jpg")))
    vga = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
    options = {"max_side": max_side} if max_side else {}
    analyzer = emolens.Analyzer(model=model, device=device, detector_options=options, precision=precision)
    analyzer.warmup()
    result = analyzer.analyze(vga)
    t = time_ms(lambda: analyzer.analyze(vga), repeat=repeat)
    stages = [analyzer.analyze(vga).timings_ms for _ in range(repeat)]
    return {
        "image": "group/multiface.jpg resized to 640x480",
        "model": model,
        "precision": precision,
        "detector_max_side": max_side,
        "faces": len(result.faces),
        "detector": analyzer.detector_name,
        "fps": 1e3 / t["median_ms"],
        "stages_median_ms": {k: float(np.median([s[k] for s in stages])) for k in ("load", "detect", "classify")},
        **t,
    }


def cold_start(device: str, runs: int = 3) -> dict[str, Any]:
    photo = str(shared_path("images", "group", "multiface.jpg"))
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _CHILD, photo, device], capture_output=True, text=True, check=True)
        samples.append(json.loads(out.stdout))
    return {k: float(np.median([s[k] for s in samples])) for k in samples[0]}


def _row(kind: str, name: str, device: str, repeat: int, max_side: int | None, precision: str) -> list[dict[str, Any]]:
    """One row (or the rows of one model), measured in this process: what ``--row`` prints as JSON."""
    if kind == "model":
        return model_throughput(name, device, repeat)
    return [end_to_end(name, device, repeat, max_side=max_side, precision=precision)]


def _fresh(
    kind: str, name: str, device: str, repeat: int, max_side: int | None = None, precision: str = "auto"
) -> list[dict[str, Any]]:
    """The row measured twice, each time in a new process; the faster run is kept, the spread is recorded."""
    runs = []
    for _ in range(2):
        command = [sys.executable, __file__, "--row", kind, name, "--device", device, "--repeat", str(repeat)]
        if max_side:
            command += ["--max-side", str(max_side)]
        command += ["--precision", precision]
        runs.append(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout))
    rows = []
    for first, second in zip(*runs, strict=True):
        best, other = sorted((first, second), key=lambda r: r["median_ms"])
        spread = max(best["p95_ms"] - best["median_ms"], 0.02 * best["median_ms"])
        rows.append(
            {
                **best,
                "other_run_median_ms": other["median_ms"],
                "unstable": other["median_ms"] - best["median_ms"] > spread,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--models", help="comma-separated model names (default: every model whose weights are here)")
    parser.add_argument("--row", nargs=2, metavar=("KIND", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--max-side", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(_row(args.row[0], args.row[1], args.device, args.repeat, args.max_side, args.precision)))
        return
    names = args.models.split(",") if args.models else MODELS.names()
    names = [n for n in names if all(is_available(w) for w in MODELS.get(n).weights)]
    models = [row for name in names for row in _fresh("model", name, args.device, args.repeat)]
    e2e = [row for name in names for row in _fresh("e2e", name, args.device, args.repeat)]
    e2e += [row for name in names for row in _fresh("e2e", name, args.device, args.repeat, max_side=320)]
    quantized = [name for name in names if MODELS.get(name).int8]
    for max_side in (None, 320):
        e2e += [row for n in quantized for row in _fresh("e2e", n, args.device, args.repeat, max_side, "int8")]
    cold = cold_start(args.device)
    lines = [
        f"Speed on {args.device} (`python benchmarks/speed.py --device {args.device} --repeat {args.repeat}"
        f"{' --models ' + args.models if args.models else ''}`; host: {machine()['cpu']}{thread_env_note()})",
        "",
        "| model | runtime | flip TTA | batch | faces/s | median ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['model']} ({r['params'] / 1e6:.2f}M params, {r['mflops']:.0f} MFLOPs/face) | {r['runtime']} "
            f"| {'yes' if r['tta'] else 'no'} | {r['batch']} "
            f"| {r['faces_per_s']:,.0f}{' (unstable)' if r['unstable'] else ''} | {r['median_ms']:.2f} "
            f"| {r['p95_ms']:.2f} |"
            for r in models
        ),
        "",
        f"End to end `Analyzer.analyze` ({e2e[0]['image']}, detector {e2e[0]['detector']}, each model with its "
        "default TTA setting):",
        "",
        "| model | precision | detector input | faces | median ms | p95 ms | images/s "
        "| median load / detect / classify ms |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['model']} | {r['precision']} "
            f"| {'640x480' if not r['detector_max_side'] else 'max side 320 (detector_options)'} "
            f"| {r['faces']} | {r['median_ms']:.1f}{' (unstable)' if r['unstable'] else ''} | {r['p95_ms']:.1f} "
            f"| {r['fps']:.0f} "
            f"| {r['stages_median_ms']['load']:.1f} / {r['stages_median_ms']['detect']:.1f} / "
            f"{r['stages_median_ms']['classify']:.1f} |"
            for r in e2e
        ),
        "",
        "Each row: the faster of two runs, each in a fresh process; (unstable) marks a row whose runs differ by "
        "more than their p95 - median spread.",
        "",
        f"Fresh process: `import emolens` {cold['import_s'] * 1e3:.0f} ms; import + first `analyze()` "
        f"{cold['cold_start_s']:.2f} s; peak resident memory after 51 analyses {cold['peak_rss_mb']:.0f} MB.",
    ]
    write_results(
        f"speed-{args.device}",
        {"machine": machine(), "models": models, "end_to_end": e2e, "cold_start": cold},
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
