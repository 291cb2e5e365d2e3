"""``emolens.batch()``: analyse whole collections on one machine or a Ray cluster, resumably."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._checks import check_bool, check_int
from .._device import check_device_name
from .._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE
from .._registry import ModelSpec
from .._rows import Row, columns, file_column
from ..errors import InvalidOptionError
from ._inputs import BatchInput, expand_inputs
from ._job import Job
from ._store import Store

__all__ = ["ENGINES", "BatchInput", "BatchReport", "batch", "expand_inputs"]

ENGINES = ("local", "ray")


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a batch run did.

    Attributes:
        out: the output file (``None`` when the rows were kept in memory).
        inputs: inputs named (after expanding folders, globs and lists).
        skipped: inputs already in ``out`` from an earlier run (resumed).
        analysed: inputs analysed by this run.
        faces: faces found by this run.
        errors: inputs of this run that became error rows.
        seconds: wall time of this run.
        rows: every row (earlier runs' included), sorted by file, frame and face.
    """

    out: Path | None
    inputs: int
    skipped: int
    analysed: int
    faces: int
    errors: int
    seconds: float
    rows: tuple[Row, ...]
    columns: tuple[str, ...]

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame (the output file's columns)."""
        from .._optional import require

        pandas = require("pandas", extra="batch", feature="to_dataframe()")
        return pandas.DataFrame(list(self.rows), columns=list(self.columns))


def batch(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    detector: str | None = "auto",
    model: str = "default",
    engine: str = "local",
    workers: int | None = None,
    threads: int | None = None,
    batch_size: int = 16,
    part_size: int = 256,
    every: int = 1,
    fallback: bool = True,
    min_face_size: int = DEFAULT_MIN_FACE_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "cpu",
    overwrite: bool = False,
    format: str = "table",
    progress: bool | None = None,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    precision: str = "auto",
) -> BatchReport:
    """Analyse every image and video in ``inputs``: one row per face, one row per failed or faceless input.

    Args:
        inputs: files, folders (recursive), globs, or ``.txt``/``.csv``/``.parquet`` lists of paths.
        out: ``.parquet``, ``.csv`` or ``.jsonl`` file. Re-running with the same ``out`` skips the
            inputs already in it (``overwrite=True`` starts again). ``None``: rows only in memory.
        engine: ``"local"`` (a process pool) or ``"ray"`` (Ray Data: ``emolens[ray]``).
        workers: local worker processes, or Ray actors (default: the number of CPU cores).
        threads: torch/OpenCV threads per worker (default: 1 when there are several workers).
        batch_size: inputs per task; their faces are classified in one forward pass.
        part_size: inputs per part of the output written while the run goes (the most a kill loses).
        every: analyse every N-th frame of videos (one row per face per analysed frame).
        format: ``"table"`` (every column) or ``"submission"`` (``file,label``; ``out`` must be .csv).
        progress: show a progress bar (default: when stderr is a terminal).
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); default: start a local one.
        num_cpus: CPUs per Ray actor.
        num_gpus: GPUs per Ray actor (with ``device="cuda"``).
        precision: as in :func:`emolens.load_model`; ``"fastest"`` is decided once, here, before the workers
            start, so every row of the run comes from the same weights (its ``model_id``).

    A broken file is an error row (``error_type``, ``error_message``), never a crash and never missing.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise InvalidOptionError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}", option="engine")
    for name, value in (("batch_size", batch_size), ("part_size", part_size), ("every", every)):
        check_int(name, value, minimum=1)
    fallback = check_bool("fallback", fallback)
    min_face_size = check_int("min_face_size", min_face_size)
    max_pixels = check_int("max_pixels", max_pixels, minimum=1)
    check_device_name(device)  # the workers check that the device exists
    workers = check_int("workers", workers or os.cpu_count() or 1, minimum=1)
    if threads is not None:
        threads = check_int("threads", threads, minimum=1)
    if threads is None and workers > 1:
        threads = 1
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)

    spec, precision = _answering_spec(model, device, precision)
    store, todo, skipped = _open_store(out, spec, format, overwrite, expand_inputs(items))
    try:  # the output is held from here: released however the run ends
        found = store.detector_ids if store is not None else set()
        resumes = (str(out), next(iter(found))) if len(found) == 1 else None  # the workers check their detector
        job = Job(detector, model, device, fallback, min_face_size, max_pixels, every, precision, resumes)
        show = sys.stderr.isatty() if progress is None else progress
        tally = _Tally(len(todo), show)
        chunks = list(_chunks(todo, batch_size))
        if engine == "local":
            memory = _run_locally(chunks, job, store, tally, part_size=part_size, workers=workers, threads=threads)
        else:
            memory = _run_on_ray(
                chunks,
                job,
                store,
                spec,
                threads=threads,
                progress=show,
                address=address,
                actors=workers,
                cpus=num_cpus,
                gpus=num_gpus,
            )
            tally.count_from(memory if store is None else store.part_rows(), len(todo))
        rows = store.finish() if store is not None else sorted(memory, key=_order_key)
        return BatchReport(
            out=None if store is None else store.out,
            inputs=len(todo) + skipped,
            skipped=skipped,
            analysed=len(todo),
            faces=tally.faces,
            errors=tally.errors,
            seconds=time.perf_counter() - started,
            rows=tuple(rows),
            columns=tuple(columns(spec.labels)),
        )
    finally:
        if store is not None:
            store.release()


def _answering_spec(model: str, device: str, precision: str) -> tuple[ModelSpec, str]:
    """The spec whose weights will answer (the int8 graph's for int8) and the precision the workers run;
    ``"fastest"`` is measured (or read from this host's remembered choice) here, once."""
    from ..models import check_precision, int8_spec, load_model, model_spec

    if check_precision(precision) == "fastest":
        precision = "int8" if load_model(model, device=device, precision="fastest").precision == "int8" else "auto"
    return (int8_spec(model) if precision == "int8" else model_spec(model)), precision


def _open_store(
    out: str | os.PathLike[str] | None, spec: ModelSpec, format: str, overwrite: bool, todo: list[BatchInput]
) -> tuple[Store | None, list[BatchInput], int]:
    """The output store (``None``: rows in memory), the inputs still to analyse, and how many it already has.

    Rows already there must come from the same weights (checked here) and the same detector (checked by the
    workers, which know which detector they built): another's are refused, not mixed.
    """
    if out is None:
        if format != "table":
            raise InvalidOptionError("format='submission' needs an out file", option="format")
        return None, todo, 0
    store = Store(out, spec.labels, model=spec.name, model_id=spec.identity if spec.weights else None, format=format)
    store.acquire()
    try:
        if overwrite:
            store.clear()
        done = store.done()
    except BaseException:
        store.release()
        raise
    left = [item for item in todo if file_column(item.path) not in done]
    return store, left, len(todo) - len(left)


def _run_locally(
    chunks: list[list[BatchInput]],
    job: Job,
    store: Store | None,
    tally: _Tally,
    *,
    part_size: int,
    workers: int,
    threads: int | None,
) -> list[Row]:
    """Analyse the chunks in a local process pool, writing a part every ``part_size`` inputs; the rows kept in
    memory (all of them when there is no store)."""
    from ._local import run_local

    memory: list[Row] = []
    pending: list[Row] = []
    pending_inputs = 0

    def on_done(chunk: list[BatchInput], rows: list[Row]) -> None:
        nonlocal pending_inputs
        tally.update(chunk, rows)
        if store is None:
            memory.extend(rows)
            return
        pending.extend(rows)
        pending_inputs += len(chunk)
        if pending_inputs >= part_size:
            store.write_part(pending)
            pending.clear()
            pending_inputs = 0

    try:
        run_local(iter(chunks), job, workers=workers, threads=threads, on_done=on_done)
    finally:  # also on Ctrl-C or a failure: what finished is kept for the next run
        if store is not None:
            store.write_part(pending)
        tally.close()
    return memory


def _run_on_ray(
    chunks: list[list[BatchInput]],
    job: Job,
    store: Store | None,
    spec: ModelSpec,
    *,
    threads: int | None,
    progress: bool,
    address: str | None,
    actors: int,
    cpus: float,
    gpus: float,
) -> list[Row]:
    """Analyse the chunks with Ray Data actors; the rows when there is no store (written to a scratch one)."""
    from ._ray import run_ray

    target = store
    if target is None:
        import tempfile

        scratch = tempfile.TemporaryDirectory(prefix="emolens-batch-")
        target = Store(Path(scratch.name) / "rows.jsonl", spec.labels, model=spec.name)
    if chunks:
        run_ray(
            chunks,
            job,
            target,
            address=address,
            actors=actors,
            num_cpus=cpus,
            num_gpus=gpus,
            threads=threads,
            progress=progress,
        )
    return target.finish() if store is None else []


def _order_key(row: Row) -> tuple[str, int, int]:
    from ._store import _order

    return _order(row)


def _chunks(items: Sequence[BatchInput], size: int) -> Iterator[list[BatchInput]]:
    """Images in chunks of ``size``; each video alone (it has many frames of its own)."""
    chunk: list[BatchInput] = []
    for item in items:
        if item.video:
            yield [item]
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Tally:
    """Counts and the progress bar (tqdm when shown: files/s, faces/s, errors so far, ETA)."""

    def __init__(self, total: int, show: bool) -> None:
        self.faces = 0
        self.errors = 0
        self.files = 0
        self.started = time.perf_counter()
        self.bar: Any = None
        if show and total:
            from .._optional import require

            tqdm = require("tqdm", extra="batch", feature="the progress bar").tqdm
            self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)

    def update(self, chunk: Sequence[BatchInput], rows: Sequence[Row]) -> None:
        self.files += len(chunk)
        self.faces += sum(row["face"] is not None for row in rows)
        self.errors += len({row["file"] for row in rows if row["error_type"] is not None})
        if self.bar is not None:
            elapsed = max(1e-9, time.perf_counter() - self.started)
            self.bar.set_postfix(faces_per_s=f"{self.faces / elapsed:.1f}", errors=self.errors, refresh=False)
            self.bar.update(len(chunk))

    def count_from(self, rows: Iterable[Row], files: int) -> None:
        rows = list(rows)
        self.files = files
        self.faces = sum(row["face"] is not None for row in rows)
        self.errors = len({row["file"] for row in rows if row["error_type"] is not None})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
