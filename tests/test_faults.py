"""The weights store against a hostile loopback server: every fault fails in bounded time with a typed
error naming the phase, leaves nothing in the cache, and is not retried in a storm; concurrent first use
downloads once, and a process waiting on another's download gives up in bounded time, naming it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import emolens.weights as store
from emolens import WeightsDownloadError, WeightsError, WeightsFile, WeightsIntegrityError, WeightsUnavailableError

PAYLOAD = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB
WEIGHTS = WeightsFile(name="blob.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD))
FAST_LIMITS = store.DownloadLimits(
    connect_s=1.0,
    headers_s=1.0,
    first_byte_s=1.0,
    read_s=1.0,
    total_s=4.0,
    min_rate=50_000.0,
    grace_s=1.0,
    lock_wait_s=2.0,
)
SLACK_S = 1.5  # timers and a loaded machine: how late a deadline may be noticed


class _FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests_seen: int
    stop: threading.Event


class _FaultHandler(http.server.BaseHTTPRequestHandler):
    server: _FaultServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests_seen += 1
        mode = self.path.strip("/").split("/")[0]
        with contextlib.suppress(OSError):  # the client gave up: expected for most modes
            self._serve(mode)

    def _serve(self, mode: str) -> None:
        if mode in ("404", "500"):
            self.send_error(int(mode))
        elif mode == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()
        elif mode == "chain":  # /chain/<n>/blob.bin redirects to /chain/<n + 1>/blob.bin, for ever
            step = int(self.path.split("/")[2])
            self.send_response(307)
            self.send_header("Location", f"/chain/{step + 1}/blob.bin")
            self.end_headers()
        elif mode == "hang":
            self.server.stop.wait(30)
        elif mode == "hdrip":  # the status line and headers one byte every 0.2 s: never silent for long
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(PAYLOAD)}\r\nX-Padding: {'.' * 200}\r\n\r\n"
            for byte in head.encode():
                if self.server.stop.wait(0.2):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif mode == "stall":  # headers at once, then no body
            self._headers(len(PAYLOAD))
            self.wfile.flush()
            self.server.stop.wait(30)
        elif mode == "drip":  # one byte at a time, slower than any sane rate
            self._headers(len(PAYLOAD))
            for byte in PAYLOAD[:60]:
                if self.server.stop.wait(0.2):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif mode == "reset":  # half the file, then the connection is reset
            self._headers(len(PAYLOAD))
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        elif mode == "short":  # claims more bytes than it sends
            self._headers(len(PAYLOAD) + 1000)
            self.wfile.write(PAYLOAD)
        elif mode == "big":  # far larger than the spec's size
            self._headers(len(PAYLOAD) * 10)
            for _ in range(10):
                self.wfile.write(PAYLOAD)
        elif mode == "endless":  # no length announced, and more than the spec's size
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(PAYLOAD)
        elif mode == "wrong":
            self._headers(len(PAYLOAD))
            self.wfile.write(bytes(len(PAYLOAD)))
        else:  # "ok", slowly enough for concurrent clients to overlap
            time.sleep(0.3)
            self._headers(len(PAYLOAD))
            self.wfile.write(PAYLOAD)

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def fault_server() -> Iterator[tuple[str, _FaultServer]]:
    server = _FaultServer(("127.0.0.1", 0), _FaultHandler)
    server.requests_seen = 0
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fast_limits(monkeypatch: pytest.MonkeyPatch, empty_home: Path) -> Iterator[None]:
    monkeypatch.setattr(store, "DOWNLOAD_LIMITS", FAST_LIMITS)
    store.forget_failures()
    yield
    store.forget_failures()


# the phase deadline each mode must fail within (plus SLACK_S); the others: within total_s (plus SLACK_S)
PHASE_BOUND = {"hang": FAST_LIMITS.headers_s, "hdrip": FAST_LIMITS.headers_s, "stall": FAST_LIMITS.first_byte_s}


@pytest.mark.parametrize(
    ("mode", "error", "match"),
    [
        ("404", WeightsDownloadError, "HTTP 404"),
        ("500", WeightsDownloadError, "HTTP 500"),
        ("loop", WeightsDownloadError, "redirect loop"),
        ("chain/0", WeightsDownloadError, "too many redirects"),
        ("hang", WeightsDownloadError, "no response headers within 1 s"),
        ("hdrip", WeightsDownloadError, "no response headers within 1 s"),
        ("stall", WeightsDownloadError, "no body bytes within 1 s"),
        ("drip", WeightsDownloadError, "under 50 KB/s"),
        ("reset", WeightsDownloadError, "connection lost after"),
        ("short", WeightsDownloadError, "connection closed after"),
        ("big", WeightsDownloadError, "announces"),
        ("endless", WeightsDownloadError, "more than"),
        ("wrong", WeightsIntegrityError, "does not match"),
    ],
)
def test_faults_fail_fast_typed_and_leave_no_file(
    fault_server: tuple[str, _FaultServer],
    empty_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    error: type[Exception],
    match: str,
) -> None:
    base, server = fault_server
    monkeypatch.setenv("EMOLENS_MIRROR", f"{base}/{mode}")
    started = time.monotonic()
    with pytest.raises(error, match=match):
        store.fetch(WEIGHTS)
    assert time.monotonic() - started < PHASE_BOUND.get(mode, FAST_LIMITS.total_s) + SLACK_S
    assert [p.name for p in empty_home.iterdir() if not p.name.endswith(".lock")] == []
    # the failure is remembered: no second request in this process until forgotten
    seen = server.requests_seen
    with pytest.raises(error):
        store.fetch(WEIGHTS)
    assert server.requests_seen == seen
    store.forget_failures()
    monkeypatch.setenv("EMOLENS_MIRROR", f"{base}/ok")
    assert store.sha256_of(store.fetch(WEIGHTS)) == WEIGHTS.sha256


@pytest.mark.parametrize("mirror", ["127.0.0.1:18081", "file:///etc", "ftp://host/x", "http://"])
def test_malformed_mirror_is_reported_as_such(mirror: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOLENS_MIRROR", mirror)
    with pytest.raises(WeightsDownloadError, match="is not an http"):
        store.fetch(WEIGHTS)


def test_unwritable_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_server) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMOLENS_HOME", str(blocker / "cache"))
    monkeypatch.setenv("EMOLENS_MIRROR", f"{fault_server[0]}/ok")
    with pytest.raises(WeightsUnavailableError, match="set EMOLENS_HOME to a writable folder"):
        store.fetch(WEIGHTS)


_FETCH = """
import resource, signal, sys
import emolens.weights as store
from emolens import WeightsError, WeightsFile
if len(sys.argv) > 3:  # a disk that fills up after a few KB
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
weights = WeightsFile(name="blob.bin", sha256=sys.argv[1], size=int(sys.argv[2]))
try:
    print(store.fetch(weights))
except WeightsError as exc:
    print(type(exc).__name__, exc)
"""


def _fetch_in_subprocess(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _FETCH, WEIGHTS.sha256, str(WEIGHTS.size), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def test_concurrent_first_use_downloads_once(
    fault_server: tuple[str, _FaultServer], empty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, server = fault_server
    monkeypatch.setenv("EMOLENS_MIRROR", f"{base}/ok")
    processes = [_fetch_in_subprocess() for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in processes]
    assert outputs == [str(empty_home / "blob.bin")] * 4
    assert server.requests_seen == 1
    assert store.sha256_of(empty_home / "blob.bin") == WEIGHTS.sha256


def test_full_disk_is_a_typed_error_and_leaves_no_file(
    fault_server: tuple[str, _FaultServer], empty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOLENS_MIRROR", f"{fault_server[0]}/ok")
    output = _fetch_in_subprocess("full").communicate(timeout=60)[0]
    assert output.startswith("WeightsDownloadError") and "could not download" in output
    assert [p.name for p in empty_home.iterdir() if not p.name.endswith(".lock")] == []


def test_cache_hit_never_touches_the_network(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (empty_home / "blob.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("EMOLENS_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    assert store.fetch(WEIGHTS) == empty_home / "blob.bin"
    assert not isinstance(dataclasses.replace(WEIGHTS), WeightsError)


def _holder_pid(lock: Path, timeout: float) -> int | None:
    """The pid a lock holder wrote into ``lock``, once it has (None if none did within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return int(json.loads(lock.read_text())["pid"])
        time.sleep(0.05)
    return None


def test_lock_waiter_gives_up_in_time_naming_the_holder(
    fault_server: tuple[str, _FaultServer], empty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stuck on a header-dripping mirror (default limits) holds the lock; a second one gives up."""
    base, server = fault_server
    monkeypatch.setenv("EMOLENS_MIRROR", f"{base}/hdrip")
    holder = _fetch_in_subprocess()
    try:
        assert _holder_pid(empty_home / "blob.bin.lock", timeout=30) == holder.pid
        started = time.monotonic()
        with pytest.raises(WeightsUnavailableError, match=f"another process \\(pid {holder.pid} on ") as info:
            store.fetch(WEIGHTS)
        waited = time.monotonic() - started
        assert FAST_LIMITS.lock_wait_s - 0.1 < waited < FAST_LIMITS.lock_wait_s + SLACK_S
        assert "downloading since" in str(info.value) and "delete the lock file" in str(info.value)
        assert str(empty_home / "blob.bin.lock") in str(info.value)
        assert server.requests_seen == 1  # the holder's request: the waiter never asked the mirror
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    # not remembered as a failure: with the holder gone, the next call downloads, and clears the holder's line
    monkeypatch.setenv("EMOLENS_MIRROR", f"{base}/ok")
    assert store.sha256_of(store.fetch(WEIGHTS)) == WEIGHTS.sha256
    assert (empty_home / "blob.bin.lock").read_text() == ""


def test_lock_holder_line_is_readable_and_cleared(empty_home: Path) -> None:
    lock = empty_home / "blob.bin.lock"
    with store.process_lock(empty_home, "blob.bin", 1.0):
        assert _holder_pid(lock, timeout=1) == os.getpid()
    assert lock.read_text() == ""
