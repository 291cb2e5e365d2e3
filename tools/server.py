"""Start a real ``emolens serve`` process on 127.0.0.1: for the API and browser tests, the serve
benchmark and the docs' screenshots."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Server", "free_port", "running_server"]


@dataclass(frozen=True)
class Server:
    """A running server: its base URL, process id and process."""

    url: str
    pid: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(
    args: Sequence[str] = (), *, log: Path, ready_timeout: float = 120.0, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """``emolens serve ARGS`` in a subprocess (``env`` added to this process's environment); yields its URL,
    pid and process once ``/readyz`` answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "emolens", "serve", "--port", str(port), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"emolens serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"emolens serve was not ready within {ready_timeout:g} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield Server(base, process.pid, process)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
