"""The weights store against a real HTTP server on 127.0.0.1 (good file, tampered file, server down, offline)."""

import shutil
from pathlib import Path

import pooch
import pytest

import emolens
from emolens import (
    WeightsDownloadError,
    WeightsFile,
    WeightsIntegrityError,
    WeightsUnavailableError,
)
from emolens.detectors import DETECTORS, RETINAFACE_MOBILENET_WEIGHTS
from emolens.weights import fetch, sha256_of

DOWNLOADED = RETINAFACE_MOBILENET_WEIGHTS  # a file fetched on first use (YuNet's is bundled)


def _mirror_of(folder: Path, monkeypatch: pytest.MonkeyPatch, serve: object) -> None:
    monkeypatch.setenv("EMOLENS_MIRROR", serve(folder))  # type: ignore[operator]


def test_download_verifies_and_caches(empty_home: Path, shared: Path, monkeypatch, serve, caplog) -> None:
    _mirror_of(shared / "weights", monkeypatch, serve)
    pooch_log = pooch.get_logger()  # its own logger, outside logging's hierarchy: caplog does not see it
    pooch_log.addHandler(caplog.handler)
    try:
        path = fetch(DOWNLOADED)
    finally:
        pooch_log.removeHandler(caplog.handler)
    # pooch's advice to pass the hash to pooch.retrieve means nothing to an emolens user (emolens checks it)
    assert caplog.records and not any("known_hash" in record.getMessage() for record in caplog.records)
    assert path == empty_home / DOWNLOADED.name
    assert sha256_of(path) == DOWNLOADED.sha256
    # Second call is served from the cache, even with the server gone and offline mode on.
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    assert fetch(DOWNLOADED) == path


def test_tampered_download_is_rejected_and_never_cached(empty_home: Path, tmp_path: Path, monkeypatch, serve) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / DOWNLOADED.name).write_bytes(b"not the real model" * 1000)
    _mirror_of(evil, monkeypatch, serve)
    with pytest.raises(WeightsIntegrityError, match="does not match") as info:
        fetch(DOWNLOADED)
    assert info.value.expected == DOWNLOADED.sha256
    assert [p for p in empty_home.iterdir() if p.suffix != ".lock"] == []  # no partial or bad file left behind


def test_server_down_is_a_download_error(empty_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMOLENS_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(WeightsDownloadError, match="could not download") as info:
        fetch(DOWNLOADED)
    assert isinstance(info.value, ConnectionError)
    assert info.value.url.startswith("http://127.0.0.1:9/")
    assert [p for p in empty_home.iterdir() if p.suffix != ".lock"] == []


def test_missing_file_on_server(empty_home: Path, tmp_path: Path, monkeypatch, serve) -> None:
    _mirror_of(tmp_path, monkeypatch, serve)  # serves an empty folder: HTTP 404
    with pytest.raises(WeightsDownloadError, match="HTTPError"):
        fetch(DOWNLOADED)


def test_offline_fails_fast_with_instructions(empty_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="emolens download") as info:
        fetch(DOWNLOADED)
    assert info.value.filename == DOWNLOADED.name


def test_corrupt_cache_is_replaced_online_and_refused_offline(
    empty_home: Path, shared: Path, monkeypatch, serve
) -> None:
    cached = empty_home / DOWNLOADED.name
    cached.write_bytes(b"truncated")
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    with pytest.raises(WeightsIntegrityError, match="corrupt"):
        fetch(DOWNLOADED)
    monkeypatch.delenv("EMOLENS_OFFLINE")
    _mirror_of(shared / "weights", monkeypatch, serve)
    assert sha256_of(fetch(DOWNLOADED)) == DOWNLOADED.sha256


def test_tampered_download_keeps_a_good_cached_file_intact(
    empty_home: Path, shared: Path, tmp_path: Path, monkeypatch, serve
) -> None:
    shutil.copy(shared / "weights" / DOWNLOADED.name, empty_home)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / DOWNLOADED.name).write_bytes(b"x")
    _mirror_of(evil, monkeypatch, serve)
    assert sha256_of(fetch(DOWNLOADED)) == DOWNLOADED.sha256  # cache hit: the mirror is never asked


def test_bundled_weights_are_verified(tmp_path: Path) -> None:
    bad = WeightsFile(name="emolens-vgg-wide-v3.safetensors", sha256="0" * 64, bundled=True)
    with pytest.raises(WeightsIntegrityError, match="refusing to load"):
        fetch(bad)
    missing = WeightsFile(name="no-such-file.safetensors", sha256="0" * 64, bundled=True)
    with pytest.raises(WeightsUnavailableError, match="reinstall"):
        fetch(missing)


def test_download_all_through_a_mirror(empty_home: Path, shared: Path, monkeypatch, serve) -> None:
    _mirror_of(shared / "weights", monkeypatch, serve)
    paths = emolens.download(emolens.list_detectors())
    third_party = [w.name.removesuffix(f".{w.unpack}") for spec in DETECTORS.specs() for w in spec.weights]
    assert {Path(p).name for p in paths} >= set(third_party)
    assert all(Path(p).is_file() for p in paths)


def test_auto_detector_is_yunet_offline_on_a_first_run(empty_home: Path, monkeypatch) -> None:
    """YuNet ships in the wheel: no network, no cache, and still the accurate detector."""
    from emolens import Analyzer

    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    emolens.clear_cache()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert Analyzer("auto").detector_name == "yunet"
    finally:
        emolens.clear_cache()


@pytest.mark.usefixtures("registries")
def test_auto_detector_falls_back_to_haar_with_one_warning(empty_home: Path, monkeypatch) -> None:
    import dataclasses

    from emolens import Analyzer

    yunet = DETECTORS.get("yunet")
    unbundled = dataclasses.replace(yunet.weights[0], bundled=False)  # as if YuNet's file were not in the wheel
    emolens.register_detector(dataclasses.replace(yunet, weights=(unbundled,)), overwrite=True)
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    emolens.clear_cache()
    with pytest.warns(emolens.EmolensWarning, match="using the 'haar' detector") as record:
        analyzer = Analyzer("auto")
    assert len(record) == 1 and "EMOLENS_OFFLINE" in str(record[0].message)
    assert analyzer.detector_name == "haar"


def test_auto_detector_prefers_yunet_when_cached() -> None:
    from emolens import Analyzer

    emolens.clear_cache()
    assert Analyzer("auto").detector_name == "yunet"
