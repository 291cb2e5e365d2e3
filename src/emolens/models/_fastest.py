"""``precision="fastest"``: the quicker of a model's runtimes on this host, measured once and remembered.

The candidates are the torch network at ``precision="auto"`` (bf16 where the CPU has it natively, else
float32) and, for models that ship one, the int8 ONNX graph (run by onnxruntime). Each classifies
the same 8 crops a few times; the faster median wins. The choice is kept in ``precisions.json`` in the
weights cache, per host (CPU model and features, core count, torch and onnxruntime versions), model
identity and TTA setting (both candidates mirror the same unsure faces), so later loads skip the
measurement and every process on the host agrees. What was chosen is
never hidden: the model's :attr:`~emolens.EmotionModel.precision` and, for int8, its ``model_id`` say so,
and ``emolens models --verbose`` lists this host's choices.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from .._device import cpu_info

__all__ = ["CHOICES_FILE", "fastest_choices", "host_key", "pick_fastest"]

#: File in the weights cache that keeps the measured choices.
CHOICES_FILE = "precisions.json"
_MAX_ENTRIES = 256  # a bound on the file: the oldest choices go first
_CROPS = 8  # a few faces, as in a group photo: the size analyze() most often classifies
_RUNS = 7
_lock = threading.Lock()


class _Classifier(Protocol):
    def predict(self, crops: list[np.ndarray]) -> Any: ...


M = TypeVar("M", bound=_Classifier)


def host_key() -> str:
    """What makes a timing valid only here: CPU model and features, cores, threads, library versions."""
    import torch

    from .. import __version__

    try:
        import onnxruntime

        ort = str(onnxruntime.__version__)
    except ImportError:
        ort = "none"
    return (
        f"{cpu_info().describe()} x{os.cpu_count()} ({torch.get_num_threads()} threads), emolens {__version__}, "
        f"torch {torch.__version__}, onnxruntime {ort}"
    )


def _path() -> Path:
    from ..weights import cache_dir

    return cache_dir() / CHOICES_FILE


def fastest_choices() -> dict[str, dict[str, Any]]:
    """This host's remembered choices, by model identity, with the TTA setting after it where that is not the
    model's default (``"<identity> (no TTA)"``); empty when none, or the file is unreadable."""
    prefix = f"{host_key()} | "
    return {
        entry["model"]: entry
        for key, entry in _read().items()
        if key.startswith(prefix) and isinstance(entry.get("model"), str)
    }


def _read() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # absent, or damaged: measured again and rewritten
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("precision"), str)}


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """This process's threads and other processes one at a time (where the lock cannot be had: unlocked)."""
    from .._file_lock import process_lock
    from ..errors import WeightsUnavailableError

    with _lock, contextlib.ExitStack() as stack:
        with contextlib.suppress(WeightsUnavailableError):  # measured anyway; the write is still atomic
            stack.enter_context(process_lock(_path().parent, CHOICES_FILE, wait_s=60))
        yield


def _remember(key: str, entry: dict[str, Any]) -> None:
    """Add one choice, written atomically (a reader sees the old file or the new one); never raises."""
    entries = _read()
    entries.pop(key, None)
    entries[key] = entry
    kept = dict(list(entries.items())[-_MAX_ENTRIES:])
    path = _path()
    scratch: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".precisions-", delete=False) as handle:
            scratch = Path(handle.name)
            json.dump(kept, handle, indent=1)
        scratch.chmod(0o644)  # as readable as the weights beside it
        os.replace(scratch, path)
    except OSError:  # a read-only cache: the choice is measured again next time
        if scratch is not None:
            scratch.unlink(missing_ok=True)


def _median_ms(predict: Callable[[list[np.ndarray]], object], crops: list[np.ndarray]) -> float:
    for _ in range(2):
        predict(crops)
    samples = []
    for _ in range(_RUNS):
        started = time.perf_counter()
        predict(crops)
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def pick_fastest(model: str, graphs: str, candidates: dict[str, Callable[[], M]]) -> tuple[str, M]:
    """(precision, model): the remembered choice on this host, or the faster one measured now.

    ``model`` is how ``fastest_choices`` lists the choice (the model's identity, and a TTA setting other than
    its default), ``graphs`` the identities of every candidate's weights and the TTA setting (a new graph or
    another setting is measured again). ``candidates`` maps a precision to a function that
    builds the model; the first is the fallback: a later one that cannot be built is left out, unremembered.
    """
    from ..errors import EmolensError

    key = f"{host_key()} | {graphs}"
    with _locked():
        remembered = _read().get(key, {}).get("precision")  # read again under the lock: another may have measured
        if remembered in candidates:
            return remembered, candidates[remembered]()
        crops = [np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8) for i in range(_CROPS)]
        timings: dict[str, float] = {}
        best: tuple[str, M] | None = None
        for index, (precision, build) in enumerate(candidates.items()):
            try:
                built = build()
            except EmolensError:
                if index == 0:
                    raise
                continue  # e.g. onnxruntime installed but broken: the others still run
            timings[precision] = _median_ms(built.predict, crops)
            if best is None or timings[precision] < timings[best[0]]:
                best = (precision, built)
        assert best is not None
        if len(timings) == len(candidates):  # a choice made without every candidate is not kept
            entry = {
                "model": model,
                "precision": best[0],
                "ms_per_8_faces": {k: round(v, 3) for k, v in timings.items()},
            }
            _remember(key, {**entry, "measured": time.strftime("%Y-%m-%d %H:%M:%S")})
        return best
