"""Leave nothing behind: kill the processes of a local Ray cluster once the driver that started it is gone.

``python -m emolens._batch._reaper PID`` runs in a session of its own, beside the driver ``PID``. Every
second it notes the Ray processes under the driver and what they started (with their start times,
so a reused pid is never hit; the driver's other children are never touched);
when its stdin closes (the driver ended: normally, or killed with SIGKILL) it kills the ones still
alive. Ray's own shutdown stops most of them, but after a SIGKILL its dashboard and runtime-env
agents stay (~90 MB each) and ignore SIGTERM. Linux only (it reads /proc); elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

__all__ = ["start_reaper"]

_PROC = Path("/proc")


def start_reaper() -> subprocess.Popen[bytes] | None:
    """Watch this process's descendants; close the returned process's stdin after a clean shutdown."""
    if not _PROC.is_dir():
        return None
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or kill of the driver's process group does not reach it
    )


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name, in brackets, may hold spaces
    return int(fields[1]), int(fields[19])


def _is_ray(pid: int) -> bool:
    """A Ray process: its program lives in the ray package, or Ray named it ``ray::...``."""
    try:
        command = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return command.startswith(b"ray::") or b"/ray/" in command


def _ray_descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live Ray process under ``root``, and of everything those started.

    Only Ray's: other children of the driver (a user's own) are never touched.
    """
    parents: dict[int, tuple[int, int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = info
    found: dict[int, int] = {}
    frontier = [pid for pid, (ppid, _) in parents.items() if ppid == root and _is_ray(pid)]
    found.update((pid, parents[pid][1]) for pid in frontier)
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def _watch(driver: int, stdin: IO[bytes]) -> None:
    seen: dict[int, int] = {}
    ended = threading.Event()

    def wait_for_end() -> None:  # stdin reaches its end when the driver closes it or dies
        stdin.read()
        ended.set()

    threading.Thread(target=wait_for_end, daemon=True).start()
    while not ended.wait(1.0):
        seen.update(_ray_descendants(driver))
    time.sleep(0.5)  # a clean shutdown's processes are on their way out
    for pid, started in seen.items():
        info = _stat(pid)
        if info is not None and info[1] == started:
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), sys.stdin.buffer)
