"""Batch throughput: the local engine at 1 and 2 workers, Ray at 1 and 2 actors, and one plain process.

python benchmarks/batch.py [--inputs 2100] [--model default] [--out benchmarks/results]

Inputs are N FER2013 val crops from ../shared, taken round-robin over the classes (sorted names).
Every row runs in a fresh process (so no row depends on what ran before it) and writes a Parquet
file; its wall time covers starting the workers or actors and loading their models. For Ray the
cluster is started before the clock starts (``ray.init(num_cpus=2)`` with the settings emolens uses
for a local cluster), as a cluster is normally running already; its start-up time is reported on
its own. Peak memory is the largest total resident memory of the row's whole process tree (the
driver, worker processes, and Ray's own processes), sampled every 0.1 s from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

from _common import REPO, machine, shared_path, write_results

_CHILD = """
import json, sys, time
config = json.loads(sys.argv[1])
ray_start = 0.0
if config["engine"] == "ray":
    import ray
    t0 = time.perf_counter()
    quiet = {"prestart_worker_first_driver": False}  # as emolens starts a local cluster (see _batch/_ray.py)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=quiet)
    ray_start = time.perf_counter() - t0
import emolens
t0 = time.perf_counter()
report = emolens.batch(config["listing"], config["out"], model=config["model"], engine=config["engine"],
                       workers=config["workers"], threads=config["threads"], progress=False)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "ray_start_s": ray_start, "files": report.analysed, "faces": report.faces,
                  "errors": report.errors}))
"""

#: Inputs of the short run that measures each configuration's fixed cost.
SMALL = 32

ROWS = [
    ("plain process, torch/OpenCV on 2 threads", "local", 1, 2),
    ("local, 1 worker x 1 thread", "local", 1, 1),
    ("local, 2 workers x 1 thread", "local", 2, 1),
    ("ray, 1 actor x 1 thread", "ray", 1, 1),
    ("ray, 2 actors x 1 thread", "ray", 2, 1),
]


def tree_rss_mb(root: int) -> float:
    """Total resident memory of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, parent = int(entry.name), int(fields.get("PPid", "0").strip())
        children.setdefault(parent, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


def run_row(listing: Path, model: str, engine: str, workers: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        config = {
            "listing": str(listing),
            "out": str(Path(scratch) / "rows.parquet"),
            "model": model,
            "engine": engine,
            "workers": workers,
            "threads": threads,
        }
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": str(threads)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(child.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out, err = child.communicate()
        done.set()
        sampler.join()
        if child.returncode != 0:
            raise SystemExit(f"{engine} x {workers} failed:\n{err[-3000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["peak_rss_mb"] = peak[0]
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=2100)
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--only", help="run only the rows whose name contains this text (no results written)")
    args = parser.parse_args()
    val = shared_path("datasets", "fer2013", "val")
    by_class = [sorted(p.glob("*.jpg")) for p in sorted(val.iterdir()) if p.is_dir()]
    rounds = zip_longest(*by_class)
    files = [f for group in rounds for f in group if f is not None][: args.inputs]
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "inputs.txt"
        listing.write_text("\n".join(str(f) for f in files) + "\n")
        few = Path(scratch) / "few.txt"
        few.write_text("\n".join(str(f) for f in files[:SMALL]) + "\n")
        results = []
        for name, engine, workers, threads in ROWS:
            if args.only and args.only not in name:
                continue
            row = run_row(listing, args.model, engine, workers, threads)
            # The same with a few inputs: the fixed cost (start-up, model loading), and the rate after it.
            small = run_row(few, args.model, engine, workers, threads)
            row.update(name=name, engine=engine, workers=workers, threads=threads)
            row["files_per_s"] = row["files"] / row["seconds"]
            row["faces_per_s"] = row["faces"] / row["seconds"]
            row["fixed_s"] = small["seconds"]
            row["steady_files_per_s"] = (row["files"] - small["files"]) / max(1e-9, row["seconds"] - small["seconds"])
            results.append(row)
            print(json.dumps(row), flush=True)

    if args.only:
        return
    by = {(r["engine"], r["workers"], r["threads"]): r for r in results}
    plain, one, two = by[("local", 1, 2)], by[("local", 1, 1)], by[("local", 2, 1)]
    ray_one, ray_two = by[("ray", 1, 1)], by[("ray", 2, 1)]
    pairs = {
        "local 2 workers / 1 worker (target >= 1.7)": (two, one),
        "local 2 workers / plain 2-thread process (target >= 1.1)": (two, plain),
        "ray 1 actor / local 1 worker (target >= 0.75)": (ray_one, one),
        "ray 2 actors / local 2 workers (target >= 0.75)": (ray_two, two),
    }
    ratios = {name: a["files_per_s"] / b["files_per_s"] for name, (a, b) in pairs.items()}
    steady = {name: a["steady_files_per_s"] / b["steady_files_per_s"] for name, (a, b) in pairs.items()}
    lines = [
        f"# Batch throughput ({len(files):,} FER2013 val crops, model `{args.model}`)",
        "",
        f"Command: `python benchmarks/batch.py --inputs {args.inputs}`. Each row in a fresh process; wall time "
        "includes starting workers/actors and loading models; Ray's own start-up "
        f"({ray_two['ray_start_s']:.1f} s for `ray.init`) is not included.",
        "",
        f"`fixed s` is the wall time of the same configuration on {SMALL} inputs (start-up and model loading); "
        "`steady files/s` is the rate after it: (files - "
        f"{SMALL}) / (wall - fixed).",
        "",
        "| configuration | files | files/s | faces/s | errors | wall s | fixed s | steady files/s | peak memory "
        "(MB, whole process tree) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['files']:,} | {r['files_per_s']:.1f} | {r['faces_per_s']:.1f} | {r['errors']} | "
            f"{r['seconds']:.1f} | {r['fixed_s']:.1f} | {r['steady_files_per_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "| ratio | whole run | steady rate |", "|---|---|---|"]
    lines += [f"| {name} | {ratios[name]:.2f} | {steady[name]:.2f} |" for name in ratios]
    lines.append("")
    data = {
        "machine": machine(),
        "inputs": len(files),
        "model": args.model,
        "rows": results,
        "ratios": ratios,
        "steady_ratios": steady,
    }
    write_results("batch", data, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
