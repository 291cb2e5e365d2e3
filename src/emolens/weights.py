"""The weights store: one pooch fetcher, SHA-256 verified, cached, mirror- and offline-aware.

The hash table is the :class:`WeightsFile` entries of the registered specs (checked in with the
code). Environment variables:

- ``EMOLENS_HOME``: cache folder (default: the OS cache folder for "emolens", via pooch).
- ``EMOLENS_OFFLINE=1``: never touch the network; a missing file fails fast.
- ``EMOLENS_MIRROR=<base URL>``: fetch ``<base URL>/<file name>`` instead of the upstream URLs.

Downloads go to a temporary file that is verified before it is moved into the cache, so an
interrupted or tampered download never leaves a bad file behind, and a bad cached file is never
returned. Every phase of a download is bounded (:data:`DOWNLOAD_LIMITS`: connect, response headers,
first body byte, silences, average rate, total time, size, redirects), so a stalled or dripping server
fails in bounded time with an error naming the phase; a file that failed is not tried again for the
rest of the process (:func:`forget_failures` allows it); and several processes fetching the same file
at once download it once (a lock file in the cache, POSIX): the others wait for it, within
``lock_wait_s``, then fail with an error naming the process that holds the lock. Proxies come from the
usual environment variables (``https_proxy``, ``no_proxy`` ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._file_lock import process_lock
from ._registry import WeightsFile
from .errors import WeightsDownloadError, WeightsError, WeightsIntegrityError, WeightsUnavailableError

__all__ = [
    "DOWNLOAD_LIMITS",
    "DownloadLimits",
    "cache_dir",
    "fetch",
    "forget_failures",
    "git_blob_sha1",
    "is_available",
    "is_offline",
    "mirror_url",
    "sha256_of",
]

_TRUE = {"1", "true", "yes", "on"}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_failures: dict[str, WeightsError] = {}  # file name -> the error of its failed download, for this process
log = logging.getLogger("emolens")


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on each phase of one download from one URL, so a stalled, dripping or endless server fails in time.

    The phase limits are deadlines, not per-read timeouts: a server sending its headers one byte a second fails
    after ``headers_s`` all the same. Every failure is a :class:`WeightsDownloadError` naming the phase.

    Attributes:
        connect_s: name lookup, TCP connect, proxy tunnel and TLS handshake, together (for each request).
        headers_s: from sending the request to the end of the status line and headers (for each request).
        first_byte_s: from the headers to the first byte of the body.
        read_s: the longest silence while reading the rest of the body.
        total_s: the whole download, redirects included.
        min_rate: bytes/s on average since the start, checked once ``grace_s`` have passed.
        grace_s: time before ``min_rate`` applies.
        max_bytes: the most bytes accepted when the spec gives no size (else its size + 1 %).
        max_redirects: redirects followed (http and https only; a redirect loop fails at once).
        lock_wait_s: how long to wait for another process (or thread) fetching the same file, then fail
            with :class:`WeightsUnavailableError` naming it: ``total_s`` and a minute.
    """

    connect_s: float = 10.0
    headers_s: float = 10.0
    first_byte_s: float = 10.0
    read_s: float = 10.0
    total_s: float = 300.0
    min_rate: float = 20_000.0
    grace_s: float = 10.0
    max_bytes: int = 1 << 30
    max_redirects: int = 5
    lock_wait_s: float = 360.0


DOWNLOAD_LIMITS = DownloadLimits()


def cache_dir() -> Path:
    """Folder holding downloaded weights (``EMOLENS_HOME`` or the OS cache folder)."""
    home = os.environ.get("EMOLENS_HOME")
    if home:
        return Path(home).expanduser()
    import pooch

    return Path(pooch.os_cache("emolens"))


def is_offline() -> bool:
    """True when ``EMOLENS_OFFLINE`` forbids network access."""
    return os.environ.get("EMOLENS_OFFLINE", "").strip().lower() in _TRUE


def mirror_url() -> str | None:
    """The base URL from ``EMOLENS_MIRROR``, if set (WeightsDownloadError unless it is an http(s) URL)."""
    mirror = os.environ.get("EMOLENS_MIRROR", "").strip().rstrip("/")
    if not mirror:
        return None
    if not mirror.lower().startswith(("http://", "https://")) or len(mirror) <= len("https://"):
        raise WeightsDownloadError(
            f"EMOLENS_MIRROR={mirror!r} is not an http(s) URL; set it to a base URL such as "
            "http://mirror.example:8080/emolens (files are fetched as <base URL>/<file name>)",
            filename="",
            url=mirror,
        )
    return mirror


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_BUNDLED_IN = ("emolens.models", "emolens.detectors")  # each package's weights/ folder ships in the wheel


def _bundled_path(weights: WeightsFile) -> Path:
    """Where a bundled file lies inside the installed emolens package."""
    candidates = [Path(str(resources.files(package).joinpath("weights", weights.name))) for package in _BUNDLED_IN]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _local_path(weights: WeightsFile) -> Path:
    if weights.bundled:
        return _bundled_path(weights)
    return Path(weights.path).expanduser() if weights.path else cache_dir() / weights.name


def is_available(weights: WeightsFile) -> bool:
    """True when the file is present locally (bundled or cached) with the right hash."""
    if weights.unpack is not None:
        unpacked = cache_dir() / weights.name.removesuffix(f".{weights.unpack}")
        if unpacked.is_file() and sha256_of(unpacked) == weights.unpacked_sha256:
            return True
    path = _local_path(weights)
    return path.is_file() and sha256_of(path) == weights.sha256


def _lock_for(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def forget_failures() -> None:
    """Allow downloads that failed earlier in this process to be tried again."""
    with _locks_guard:
        _failures.clear()


@contextlib.contextmanager
def _thread_lock(name: str, wait_s: float) -> Iterator[None]:
    """The per-file lock of this process's threads, waited for at most ``wait_s`` seconds."""
    lock = _lock_for(name)
    if not lock.acquire(timeout=wait_s):
        raise WeightsUnavailableError(
            f"another thread of this process has been fetching {name} for over {wait_s:g} s; try again later",
            filename=name,
        )
    try:
        yield
    finally:
        lock.release()


def fetch(weights: WeightsFile) -> Path:
    """Local path of a verified copy of ``weights``, downloading it first if needed.

    Raises :class:`WeightsUnavailableError` (offline, not cached), :class:`WeightsDownloadError`
    (every URL failed) or :class:`WeightsIntegrityError` (wrong SHA-256; nothing is cached).
    """
    if weights.bundled or weights.path:
        return _verified_in_place(weights)
    deadline = time.monotonic() + DOWNLOAD_LIMITS.lock_wait_s  # one wait for both locks
    with _thread_lock(weights.name, DOWNLOAD_LIMITS.lock_wait_s):
        cached = _cached(weights)
        if cached is not None:  # the common case: no lock file, no network
            return cached
        with _locks_guard:
            failed = _failures.get(weights.name)
        if failed is not None:
            raise failed
        try:
            with process_lock(cache_dir(), weights.name, max(deadline - time.monotonic(), 0.0)):
                return _fetch_locked(weights)
        except (WeightsDownloadError, WeightsIntegrityError) as exc:
            if not is_offline():  # a download failed (offline, nothing was tried: nothing to remember)
                with _locks_guard:
                    _failures[weights.name] = exc
            raise


def _cached(weights: WeightsFile) -> Path | None:
    """The verified cached file (unpacked, for archives), or None."""
    if weights.unpack is not None:
        unpacked = cache_dir() / weights.name.removesuffix(f".{weights.unpack}")
        return unpacked if unpacked.is_file() and sha256_of(unpacked) == weights.unpacked_sha256 else None
    path = cache_dir() / weights.name
    return path if path.is_file() and sha256_of(path) == weights.sha256 else None


def _fetch_locked(weights: WeightsFile) -> Path:
    """Under the process lock: another process may have finished the download meanwhile."""
    if weights.unpack is None:
        return _fetch_verified(weights)
    unpacked = cache_dir() / weights.name.removesuffix(f".{weights.unpack}")
    if unpacked.is_file() and sha256_of(unpacked) == weights.unpacked_sha256:
        return unpacked
    return _unpack(_fetch_verified(weights), unpacked, weights)


def _verified_in_place(weights: WeightsFile) -> Path:
    """A bundled file, or an exported model's file beside its card: used where it lies, never downloaded."""
    path = _local_path(weights)
    if weights.bundled:
        missing = f"bundled weights {weights.name} are missing from the emolens installation; reinstall emolens"
        changed = "the bundled copy (reinstall emolens)"
    else:
        missing = (
            f"weights file {path} not found; keep an exported model's .safetensors beside its .json card, "
            "or export it again"
        )
        changed = "a file that changed after its SHA-256 was recorded (export it again)"
    if not path.is_file():
        raise WeightsUnavailableError(missing, filename=weights.name)
    _verify(path, weights, changed)
    return path


def _unpack(archive: Path, target: Path, weights: WeightsFile) -> Path:
    """Decompress a verified archive next to itself, atomically, and verify the result."""
    import bz2

    if weights.unpack != "bz2":
        raise WeightsUnavailableError(
            f"cannot unpack {weights.name}: unknown format {weights.unpack!r}", filename=weights.name
        )
    tmp = target.with_name(target.name + ".tmp")
    with bz2.open(archive, "rb") as source, tmp.open("wb") as sink:
        for block in iter(lambda: source.read(1 << 20), b""):
            sink.write(block)
    actual = sha256_of(tmp)
    if actual != weights.unpacked_sha256:
        tmp.unlink()
        raise WeightsIntegrityError(
            f"{archive} unpacked to a file with sha256 {actual[:12]}..., expected {weights.unpacked_sha256[:12]}...",
            filename=weights.name,
            expected=weights.unpacked_sha256,
            actual=actual,
        )
    os.replace(tmp, target)
    return target


def _fetch_verified(weights: WeightsFile) -> Path:
    """The cached file, verified, downloading it when missing or corrupt (caller holds the lock)."""
    path = cache_dir() / weights.name
    if path.is_file():
        actual = sha256_of(path)
        if actual == weights.sha256:
            return path
        if is_offline():
            raise WeightsIntegrityError(
                f"cached {path} is corrupt (sha256 {actual[:12]}..., expected {weights.sha256[:12]}...); "
                f"delete it, then run `emolens download` with network access",
                filename=weights.name,
                expected=weights.sha256,
                actual=actual,
            )
        log.warning("cached %s has the wrong sha256; downloading it again", path)
    if is_offline():
        raise WeightsUnavailableError(
            f"{weights.name} is not in the cache ({path.parent}) and EMOLENS_OFFLINE is set; "
            f"run `emolens download` on a machine with network access and copy the file there, "
            f"or unset EMOLENS_OFFLINE",
            filename=weights.name,
        )
    return _download(weights, path)


def git_blob_sha1(path: Path) -> str:
    """The file's git blob SHA-1 (what a git host's tree lists): sha1(b"blob <size>\\0" + content)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_download(tmp: Path, weights: WeightsFile, url: str) -> None:
    """Raise WeightsIntegrityError unless the downloaded file has the recorded hashes."""

    def refused(problem: str, expected: str, actual: str) -> WeightsIntegrityError:
        return WeightsIntegrityError(
            f"{url} served {problem}; it was discarded and the cache is unchanged",
            filename=weights.name,
            expected=expected,
            actual=actual,
        )

    actual = sha256_of(tmp)
    blob = git_blob_sha1(tmp) if weights.git_sha1 else ""
    if blob and blob != weights.git_sha1:
        problem = (
            f"a file that is not the upstream one (git blob SHA-1 {blob[:12]}..., expected {weights.git_sha1[:12]}...)"
        )
        raise refused(problem + ". Check EMOLENS_MIRROR or try again later", weights.git_sha1, blob)
    if actual != weights.sha256 and blob:
        problem = (
            f"a file whose git blob SHA-1 matches the upstream tree, but whose sha256 ({actual[:12]}...) differs "
            f"from the recorded one ({weights.sha256[:12]}..., published by third parties): only the sha256 "
            "disagrees. Report it to the emolens developers"
        )
        raise refused(problem, weights.sha256, actual)
    if actual != weights.sha256:
        problem = f"a file whose sha256 ({actual[:12]}...) does not match the expected {weights.sha256[:12]}..."
        raise refused(problem + ". Check EMOLENS_MIRROR or try again later", weights.sha256, actual)


class _BoundedDownloader:
    """A pooch downloader in which every phase is bounded (:class:`DownloadLimits`), with a size cap."""

    def __init__(self, limits: DownloadLimits, max_bytes: int) -> None:
        self.limits = limits
        self.max_bytes = max_bytes

    def __call__(self, url: str, output_file: Any, pooch_instance: Any, check_only: bool = False) -> None:
        from ._download import download  # imports ssl and http.client: only when downloading

        with open(output_file, "wb") as sink:
            download(url, sink, self.limits, self.max_bytes)


class _NoHashAdvice(logging.Filter):
    """pooch logs, for a download without ``known_hash``, the file's SHA-256 and advice to pass it to
    ``pooch.retrieve``: emolens checks the hash itself (:func:`_check_download`), so the advice only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "known_hash" not in str(record.msg)


def _download(weights: WeightsFile, path: Path) -> Path:
    """Download to a temporary name beside the cache entry, verify, then move it into place atomically."""
    import pooch

    pooch_log = pooch.get_logger()
    if not any(isinstance(f, _NoHashAdvice) for f in pooch_log.filters):
        pooch_log.addFilter(_NoHashAdvice())
    mirror = mirror_url()
    urls = [f"{mirror}/{weights.name}"] if mirror else list(weights.urls)
    if not urls:
        raise WeightsUnavailableError(f"{weights.name} has no download URL", filename=weights.name)
    failures: list[str] = []
    temporary = f"{weights.name}.part-{os.getpid()}-{threading.get_ident()}"
    tmp = path.parent / temporary
    max_bytes = int(weights.size * 1.01) + 1024 if weights.size else DOWNLOAD_LIMITS.max_bytes
    downloader = _BoundedDownloader(DOWNLOAD_LIMITS, max_bytes)
    for url in urls:
        try:
            pooch.retrieve(
                url, known_hash=None, fname=temporary, path=path.parent, progressbar=False, downloader=downloader
            )
        except (OSError, ValueError) as exc:  # every download failure is an OSError (_download.DownloadError)
            tmp.unlink(missing_ok=True)  # pooch removes its own temporary file
            failures.append(f"{url}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        try:
            _check_download(tmp, weights, url)
        except WeightsIntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        return path
    raise WeightsDownloadError(
        f"could not download {weights.name} ({'; '.join(failures)}); check the network or set EMOLENS_MIRROR, "
        f"or copy the file into {path.parent}",
        filename=weights.name,
        url=urls[-1],
    )


def _verify(path: Path, weights: WeightsFile, what: str) -> None:
    actual = sha256_of(path)
    if actual != weights.sha256:
        raise WeightsIntegrityError(
            f"{path} has sha256 {actual[:12]}..., expected {weights.sha256[:12]}...; refusing to load {what}",
            filename=weights.name,
            expected=weights.sha256,
            actual=actual,
        )
