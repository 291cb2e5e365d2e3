"""Run every benchmark and collect their Markdown tables into one file.

    python benchmarks/run.py [--device cpu|cuda] [--quick] [--fer-python PATH] [--out benchmarks/results]

Writes <out>/<name>.json and <out>/<name>.md per benchmark, and <out>/summary.md with all tables.
CUDA rows need a GPU; with --device cuda on a machine without one, the run stops with a note.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, short video runs")
    parser.add_argument("--fer-python", default=sys.executable, help="interpreter with `fer`, for the peer rows")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here: CUDA rows are skipped (run with --device cpu)")
    repeat = ["--repeat", "5"] if args.quick else []
    runs = [
        ("detectors", ["detectors.py", "--device", args.device, *repeat]),
        ("speed", ["speed.py", "--device", args.device, *repeat]),
        ("profile-e2e", ["profile_e2e.py", *(["--repeat", "10"] if args.quick else [])]),
        ("peers", ["peers.py", "--fer-python", args.fer_python, *(["--per-class", "20"] if args.quick else [])]),
        ("alignment", ["alignment.py", *(["--per-class", "20"] if args.quick else [])]),
        ("video", ["video.py", *(["--frames", "60", "--long", "500"] if args.quick else [])]),
    ]
    sections = []
    for name, command in runs:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(HERE / command[0]), *command[1:], "--out", str(args.out)], check=True)
        newest = max(args.out.glob(f"{name}*.md"), key=lambda p: p.stat().st_mtime)
        sections.append(newest.read_text())
    (args.out / "summary.md").write_text("\n".join(sections))
    print(f"wrote {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
