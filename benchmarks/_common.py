"""Helpers shared by the benchmark scripts: locating ../shared, timing, and writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the benchmarks share tools/testdata.py with the tests
from tools.testdata import SHARED  # noqa: E402


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"benchmark data {path} is missing: put ../shared beside the repo or set EMOLENS_SHARED")
    return path


def samples_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """The wall time of each of ``repeat`` calls of ``fn``, in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def time_ms(fn: Callable[[], object], *, repeat: int, warmup: int = 2) -> dict[str, float]:
    """Median and p95 wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    return summary_ms(samples_ms(fn, repeat))


def summary_ms(samples: Iterable[float]) -> dict[str, float]:
    """Median and p95 of timings in milliseconds, and how many there are."""
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "runs": len(ordered),
    }


def cpu_description() -> str:
    """The CPU's model name and the matrix features that decide which precision is fast."""
    from emolens.models import cpu_info

    return cpu_info().describe()


#: Environment variables that change how idle threads wait, and with it every timing on 2 cores.
THREAD_ENV = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")


def thread_env_note() -> str:
    """``"; GOMP_SPINCOUNT=10000"`` for the thread settings exported to this run, for a table's heading."""
    return "".join(f"; {name}={os.environ[name]}" for name in THREAD_ENV if name in os.environ)


def machine() -> dict[str, Any]:
    import torch

    return {
        "thread_env": {name: os.environ[name] for name in THREAD_ENV if name in os.environ},
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "python": platform.python_version(),
    }


def _version(package: str) -> str | None:
    """An installed package's version, ``None`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def write_results(name: str, data: dict[str, Any], markdown: str, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(markdown)
    print(markdown)
