"""Idle threads on 2 cores: `analyze()` with and without busy-waiting thread pools, side by side.

    python benchmarks/threads.py [--repeat 60] [--out benchmarks/results]

Between two forward passes the detector (YuNet on onnxruntime) and the crops run; thread pools that keep
spinning after a pass (torch's OpenMP workers, onnxruntime's intra-op pool) take the cores from them, and
pools that sleep at once pay a wake-up for every operator. Each row is one setting measured in a fresh
process (the settings are read when a library loads): torch's `GOMP_SPINCOUNT` (libgomp's default 300,000
busy-wait iterations, or 10,000, what the `emolens` command sets) and how onnxruntime's intra-op threads wait
(`off`: they sleep at once, what emolens sets; `100 us`: they spin that long first;
`on`: onnxruntime's own default). The rows are interleaved (every setting once, then again) and each keeps its
faster run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import machine, shared_path, time_ms, write_results

CONFIGS = (("default", "auto"), ("default", "int8"), ("fast", "auto"), ("fast", "int8"))
#: How onnxruntime's intra-op threads wait: its session config entries for each setting of the table.
ORT_WAITS = {
    "off": {"session.intra_op.allow_spinning": "0"},
    "100 us": {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": "100"},
    "on": {"session.intra_op.allow_spinning": "1"},
}
SETTINGS = tuple((spin, wait) for spin in (None, "10000") for wait in ORT_WAITS)  # (GOMP_SPINCOUNT, ORT wait)


def _row(model: str, precision: str, wait: str, repeat: int) -> dict[str, Any]:
    """Measured in this process: ``analyze()`` of the 640x480 photo with onnxruntime's threads waiting as given."""
    import cv2
    import onnxruntime

    import emolens

    class Options(onnxruntime.SessionOptions):  # type: ignore[misc]
        """Session options whose spin settings are this row's: emolens' own are ignored."""

        def __init__(self) -> None:
            super().__init__()
            for key, value in ORT_WAITS[wait].items():
                super().add_session_config_entry(key, value)

        def add_session_config_entry(self, key: str, value: str) -> None:
            if not key.startswith("session.intra_op.") or "spin" not in key:
                super().add_session_config_entry(key, value)

    onnxruntime.SessionOptions = Options  # type: ignore[misc]
    photo = cv2.resize(
        cv2.imread(str(shared_path("images", "group", "multiface.jpg"))), (640, 480), interpolation=cv2.INTER_AREA
    )
    analyzer = emolens.Analyzer(model=model, precision=precision)
    analyzer.warmup()
    faces = len(analyzer.analyze(photo).faces)
    return {"faces": faces, **time_ms(lambda: analyzer.analyze(photo), repeat=repeat, warmup=5)}


def _fresh(model: str, precision: str, spin_count: str | None, wait: str, repeat: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    env |= {"GOMP_SPINCOUNT": spin_count} if spin_count else {}
    command = [sys.executable, __file__, "--row", model, precision, wait, "--repeat", str(repeat)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--row", nargs=3, metavar=("MODEL", "PRECISION", "WAIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(_row(*args.row, args.repeat)))
        return
    cells: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
    for _ in range(2):
        for model, precision in CONFIGS:
            for spin_count, wait in SETTINGS:
                row = _fresh(model, precision, spin_count, wait, args.repeat)
                key = (model, precision, spin_count, wait)
                if key not in cells or row["median_ms"] < cells[key]["median_ms"]:
                    cells[key] = row
    host = machine()
    lines = [
        f"Idle threads (`python benchmarks/threads.py --repeat {args.repeat}`; `analyze()` of group/multiface.jpg "
        f"resized to 640x480, detector yunet, fresh process per row, the faster of two; onnxruntime "
        f"{host['onnxruntime']}; host: {host['cpu']})",
        "",
        "| model | precision | GOMP_SPINCOUNT | onnxruntime threads spin | faces | median ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for (model, precision, spin_count, wait), row in cells.items():
        lines.append(
            f"| {model} | {precision} | {spin_count or 'default (300,000)'} | {wait} | {row['faces']} "
            f"| {row['median_ms']:.1f} | {row['p95_ms']:.1f} |"
        )
    rows = [
        {"model": k[0], "precision": k[1], "gomp_spincount": k[2], "onnxruntime_wait": k[3], **v}
        for k, v in cells.items()
    ]
    write_results("threads", {"machine": host, "rows": rows}, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
