"""Where the end-to-end time goes: stage times alone and in the pipeline, thread settings, hot ops.

    python benchmarks/profile_e2e.py [--repeat 50] [--out benchmarks/results]

For each emotion model, on the 640x480 photo of `speed.py` (6 faces), it measures in fresh
processes (thread settings must be made before torch starts its pools):
- `Analyzer.analyze` median, and the median of its own stage timings (load / detect / classify);
- the detector alone and the classifier alone on the same input (no interleaving);
- the same with OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep instead of spinning after torch
  ops, so they stop competing with OpenCV's threads) and with one torch thread;
and it prints torch.profiler's top operators of the classification step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import machine, shared_path, thread_env_note, write_results

HERE = Path(__file__).resolve().parent

_CHILD = """
import json, statistics, sys, time
import cv2, numpy as np, torch
import emolens
from emolens import face_crop

photo_path, model, repeat, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
photo = cv2.resize(cv2.imread(photo_path), (640, 480), interpolation=cv2.INTER_AREA)
analyzer = emolens.Analyzer(model=model)
analyzer.warmup()

def median_ms(fn):
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)

stages = [analyzer.analyze(photo).timings_ms for _ in range(repeat)]
detections = analyzer.detector.detect(photo)
crops = [face_crop(photo, d.box) for d in detections]
out = {
    "pipeline_ms": median_ms(lambda: analyzer.analyze(photo)),
    "stages_ms": {k: statistics.median(s[k] for s in stages) for k in ("load", "detect", "classify")},
    "detect_alone_ms": median_ms(lambda: analyzer.detector.detect(photo)),
    "classify_alone_ms": median_ms(lambda: analyzer.model.predict(crops)),
    "faces": len(crops),
    "torch_threads": torch.get_num_threads(),
}
if len(sys.argv) > 5:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            analyzer.model.predict(crops)
    out["top_ops"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
print(json.dumps(out))
"""


def measure(model: str, repeat: int, *, passive: bool, threads: int, ops: bool = False) -> dict[str, Any]:
    env = dict(os.environ)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    photo = str(shared_path("images", "group", "multiface.jpg"))
    argv = [sys.executable, "-c", _CHILD, photo, model, str(repeat), str(threads), *(["ops"] if ops else [])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    from emolens.models import MODELS
    from emolens.weights import is_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    settings = [("default threads", False, 0), ("OMP_WAIT_POLICY=PASSIVE", True, 0), ("1 torch thread", False, 1)]
    rows, ops = [], {}
    present = [name for name in MODELS.names() if all(is_available(w) for w in MODELS.get(name).weights)]
    skipped = sorted(set(MODELS.names()) - set(present))
    for name in skipped:
        print(f"skipped {name}: its weights are not here (`emolens download {name}` fetches them)", file=sys.stderr)
    for model in present:
        for label, passive, threads in settings:
            result = measure(model, args.repeat, passive=passive, threads=threads, ops=label == settings[0][0])
            if "top_ops" in result:
                ops[model] = result.pop("top_ops")
            rows.append({"model": model, "setting": label, **result})
    lines = [
        f"End-to-end profile (`python benchmarks/profile_e2e.py --repeat {args.repeat}`; group/multiface.jpg "
        f"at 640x480, detector auto, fresh process per row; host: {machine()['cpu']}{thread_env_note()})"
        + (f"; not measured, weights not here: {', '.join(skipped)}" if skipped else ""),
        "",
        "| model | setting | analyze median ms | in pipeline: load / detect / classify ms | detect alone ms "
        "| classify alone ms (faces) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['setting']} | {r['pipeline_ms']:.1f} | {r['stages_ms']['load']:.1f} / "
        f"{r['stages_ms']['detect']:.1f} / {r['stages_ms']['classify']:.1f} | {r['detect_alone_ms']:.1f} "
        f"| {r['classify_alone_ms']:.1f} ({r['faces']}) |"
        for r in rows
    ]
    for model, table in ops.items():
        lines += ["", f"torch.profiler, classification of the photo's faces with `{model}` (20 calls):", "", "```"]
        lines += [table.rstrip(), "```"]
    write_results(
        "profile-e2e", {"machine": machine(), "rows": rows, "top_ops": ops}, "\n".join(lines) + "\n", args.out
    )


if __name__ == "__main__":
    main()
