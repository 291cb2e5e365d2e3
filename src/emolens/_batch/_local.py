"""The ``local`` engine: a process pool with one Analyzer per worker and a bounded queue of chunks."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from .._rows import Row
from ..errors import EmolensError, InternalError, InvalidOptionError
from ._inputs import BatchInput
from ._job import Job

if TYPE_CHECKING:
    from ._work import Worker

__all__ = ["run_local"]

_worker: Worker | EmolensError | None = None  # one per worker process, built by _start (or why it could not be)


def _start(job: Job, threads: int | None) -> None:
    global _worker
    _exit_with_parent()
    from ._work import Worker

    try:
        _worker = Worker(job, threads=threads)
    except EmolensError as exc:  # an unknown detector, no CUDA, weights offline: the parent raises it as itself
        _worker = exc  # (raised here, the pool would print a traceback and break as if the worker had died)


def _exit_with_parent() -> None:
    """End this worker when the process that started it is gone (e.g. ``kill -9``), instead of lingering."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="emolens-parent-watch", daemon=True).start()


def _analyze(chunk: Sequence[BatchInput]) -> list[Row]:
    assert _worker is not None, "worker process was not initialised"
    if isinstance(_worker, EmolensError):
        raise _worker
    return _worker.rows(chunk)


_GUARD = re.compile(r"""__name__\s*==\s*["']__main__["']|["']__main__["']\s*==\s*__name__""")


def run_local(
    chunks: Iterator[list[BatchInput]],
    job: Job,
    *,
    workers: int,
    threads: int | None,
    on_done: Callable[[list[BatchInput], list[Row]], None],
) -> None:
    """Analyse every chunk; ``on_done(chunk, rows)`` runs in this process as each one finishes.

    At most two chunks per worker are queued at any time, so memory does not grow with the number
    of inputs. One worker runs in this process (no pool to start). This process imports neither torch
    nor OpenCV for the pool: the workers start while it reads the inputs.
    """
    if workers == 1:
        from ._work import Worker

        worker = Worker(job, threads=threads)
        for chunk in chunks:
            on_done(chunk, worker.rows(chunk))
        return
    script = unguarded_script()
    if script is not None:
        raise InvalidOptionError(
            f"emolens.batch(workers={workers}) starts worker processes, and each one imports {script} again: "
            'put the code that calls it under `if __name__ == "__main__":` (see docs/batch.md), or pass workers=1',
            option="workers",
        )
    context = multiprocessing.get_context("spawn")  # torch and OpenCV threads do not survive fork
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(job, threads)) as pool:
        running: dict[Future[list[Row]], list[BatchInput]] = {}
        for chunk in chunks:
            running[pool.submit(_analyze, chunk)] = chunk
            if len(running) >= 2 * workers:
                _collect(running, on_done, block=True)
        while running:
            _collect(running, on_done, block=True)


def unguarded_script() -> str | None:
    """The script this program runs when it has no ``if __name__ == "__main__":`` guard, else ``None``.

    Worker processes are spawned, and spawning imports the main script again: without the guard, the
    script's call to :func:`emolens.batch` runs again in every worker, which then dies.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:  # REPL, notebook, python -m
        return None
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None if _GUARD.search(source) else str(path)


def _collect(
    running: dict[Future[list[Row]], list[BatchInput]],
    on_done: Callable[[list[BatchInput], list[Row]], None],
    *,
    block: bool,
) -> None:
    finished, _ = wait(running, return_when=FIRST_COMPLETED, timeout=None if block else 0)
    for future in finished:
        chunk = running.pop(future)
        try:
            rows = future.result()
        except BrokenProcessPool:
            raise InternalError(
                "a worker process died (out of memory, or killed); the finished parts are saved: "
                "run the same command again to resume, perhaps with fewer --workers or a smaller --batch-size"
            ) from None
        on_done(chunk, rows)
