"""The weights store: one pooch fetcher, SHA-256 verified, cached, mirror- and offline-aware.

The hash table is the :class:`WeightsFile` entries of the registered specs (checked in with the
code). Environment variables:

- ``EMOLENS_HOME``: cache folder (default: the OS cache folder for "emolens", via pooch).
- ``EMOLENS_OFFLINE=1``: never touch the network; a missing file fails fast.
- ``EMOLENS_MIRROR=<base URL>``: fetch ``<base URL>/<file name>`` instead of the upstream URLs.

Downloads go to a temporary file that is verified before it is moved into the cache, so an
interrupted or tampered download never leaves a bad file behind, and a bad cached file is never
returned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from importlib import resources
from pathlib import Path

from ._registry import WeightsFile
from .errors import WeightsDownloadError, WeightsIntegrityError, WeightsUnavailableError

__all__ = ["cache_dir", "fetch", "git_blob_sha1", "is_available", "is_offline", "mirror_url", "sha256_of"]

_TRUE = {"1", "true", "yes", "on"}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
log = logging.getLogger("emolens")


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
    """The base URL from ``EMOLENS_MIRROR``, if set."""
    mirror = os.environ.get("EMOLENS_MIRROR", "").strip()
    return mirror.rstrip("/") or None


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


def fetch(weights: WeightsFile) -> Path:
    """Local path of a verified copy of ``weights``, downloading it first if needed.

    Raises :class:`WeightsUnavailableError` (offline, not cached), :class:`WeightsDownloadError`
    (every URL failed) or :class:`WeightsIntegrityError` (wrong SHA-256; nothing is cached).
    """
    if weights.bundled or weights.path:
        return _verified_in_place(weights)
    with _lock_for(weights.name):
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
    actual = sha256_of(tmp)
    if weights.git_sha1:
        blob = git_blob_sha1(tmp)
        if blob != weights.git_sha1:
            raise WeightsIntegrityError(
                f"{url} served a file that is not the upstream one (git blob SHA-1 {blob[:12]}..., expected "
                f"{weights.git_sha1[:12]}...); it was discarded and the cache is unchanged. Check EMOLENS_MIRROR "
                "or try again later",
                filename=weights.name,
                expected=weights.git_sha1,
                actual=blob,
            )
        if actual != weights.sha256:
            raise WeightsIntegrityError(
                f"{url} served a file whose git blob SHA-1 matches the upstream tree, but whose sha256 "
                f"({actual[:12]}...) differs from the recorded one ({weights.sha256[:12]}..., published by third "
                "parties): only the sha256 disagrees. The file was not used; report it to the emolens developers",
                filename=weights.name,
                expected=weights.sha256,
                actual=actual,
            )
    elif actual != weights.sha256:
        raise WeightsIntegrityError(
            f"{url} served a file whose sha256 ({actual[:12]}...) does not match the expected "
            f"{weights.sha256[:12]}...; it was discarded and the cache is unchanged. Check EMOLENS_MIRROR or "
            "try again later",
            filename=weights.name,
            expected=weights.sha256,
            actual=actual,
        )


def _download(weights: WeightsFile, path: Path) -> Path:
    """Download to a temporary name beside the cache entry, verify, then move it into place atomically."""
    import pooch
    import requests

    mirror = mirror_url()
    urls = [f"{mirror}/{weights.name}"] if mirror else list(weights.urls)
    if not urls:
        raise WeightsUnavailableError(f"{weights.name} has no download URL", filename=weights.name)
    failures: list[str] = []
    temporary = f"{weights.name}.part-{os.getpid()}-{threading.get_ident()}"
    tmp = path.parent / temporary
    for url in urls:
        try:
            pooch.retrieve(url, known_hash=None, fname=temporary, path=path.parent, progressbar=False)
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: {type(exc).__name__}")
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
