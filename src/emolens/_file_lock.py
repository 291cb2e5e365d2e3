"""A lock file shared by every process that fetches the same weights file (POSIX ``flock``).

The holder writes its pid, host and start time into the lock file, so a process that gives up waiting
can say who holds it; the file never holds anything else, so deleting it cannot corrupt the cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import WeightsUnavailableError

__all__ = ["process_lock"]

log = logging.getLogger("emolens")


def _holder_info() -> str:
    """What a lock holder writes into the lock file, for the processes waiting on it."""
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})


def _describe_holder(lock_path: Path) -> str:
    """'(pid 1234 on host, downloading since 12:03:04, 41 s ago)' from the lock file, or '' if unreadable."""
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8"))
        pid, host, since = int(info["pid"]), str(info["host"]), float(info["since"])
    except (OSError, ValueError, TypeError, KeyError):  # being written, or left by an older emolens
        return ""
    clock = time.strftime("%H:%M:%S" if time.time() - since < 43_200 else "%Y-%m-%d %H:%M:%S", time.localtime(since))
    return f" (pid {pid} on {host}, downloading since {clock}, {max(time.time() - since, 0):.0f} s ago)"


@contextlib.contextmanager
def process_lock(folder: Path, name: str, wait_s: float) -> Iterator[None]:
    """An exclusive lock on ``<folder>/<name>.lock`` shared by every process (POSIX; a no-op elsewhere).

    Waits at most ``wait_s`` seconds, then raises WeightsUnavailableError naming the holder, whose pid, host and
    start time it reads from the lock file. The lock file only ever holds that line: deleting it cannot corrupt
    the cache (two downloads could then overlap, each still verified and moved into place atomically).
    """
    try:
        import fcntl
    except ImportError:  # Windows: threads of one process are still serialised by _thread_lock
        yield
        return
    lock_path = folder / f"{name}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+", encoding="utf-8")
    except OSError as exc:
        raise WeightsUnavailableError(
            f"cannot write to the weights cache {folder} ({exc.strerror or exc}); set EMOLENS_HOME to a writable "
            "folder, or pre-fetch the weights there",
            filename=name,
        ) from None
    with handle:
        if not _wait_for_flock(handle, lock_path, name, wait_s):
            yield
            return
        try:
            with contextlib.suppress(OSError):  # the holder's details are a courtesy to waiters
                handle.seek(0)
                handle.truncate()
                handle.write(_holder_info())
                handle.flush()
            yield
        finally:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_flock(handle: IO[str], lock_path: Path, name: str, wait_s: float) -> bool:
    """Take the exclusive flock within ``wait_s`` (True), or find that this file system has none (False)."""
    import fcntl

    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:  # e.g. ENOLCK on a network file system: downloads are still atomic
            log.warning("cannot lock %s (%s); fetching %s without it", lock_path, exc.strerror or exc, name)
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise WeightsUnavailableError(
                f"another process{_describe_holder(lock_path)} holds the lock on {lock_path}; try again later, "
                "or delete the lock file if that process is gone",
                filename=name,
            )
        if pause == 0.05:
            log.info("waiting for another process%s to fetch %s", _describe_holder(lock_path), name)
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.5)
