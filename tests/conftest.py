"""Shared fixtures: the ../shared data folder, isolated weight caches and a loopback HTTP mirror."""

from __future__ import annotations

import csv
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.testdata import SHARED

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long", action="store_true", help="run --fuzz-cases cases per fuzz property (tests/test_fuzz.py)"
    )
    parser.addoption("--fuzz-cases", type=int, default=3_000, help="cases per fuzz property with --fuzz-long")
    parser.addoption(
        "--require-shared",
        action="store_true",
        help="fail, instead of skip, the tests that need ../shared when it is missing (EMOLENS_REQUIRE_SHARED=1, "
        "which .ci/run sets, does the same)",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many generated fuzz cases ran (tests/test_fuzz.py), so a --fuzz-long run reports its real size."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    if fuzz is not None and fuzz.CASES[0]:
        terminalreporter.write_line(f"fuzz: {fuzz.CASES[0]:,} generated cases ran")


def pytest_configure(config: pytest.Config) -> None:
    global _REQUIRE_SHARED
    _REQUIRE_SHARED = bool(config.getoption("--require-shared") or os.environ.get("EMOLENS_REQUIRE_SHARED"))


_REQUIRE_SHARED = False
_MISSING = "put the shared data folder beside the repository (../shared) or point EMOLENS_SHARED at it"


def shared_available() -> bool:
    return SHARED.is_dir()


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; a test that needs a missing one is skipped (failed with --require-shared)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if _REQUIRE_SHARED:
            pytest.fail(f"test data {path} is missing: {_MISSING}", pytrace=False)
        pytest.skip(f"needs ../shared ({path} is missing): {_MISSING}")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def photos() -> Path:
    return shared_path("images")


@pytest.fixture(scope="session")
def fer_val() -> Path:
    return shared_path("datasets", "fer2013", "val")


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights cache pre-seeded with the third-party files from ../shared/weights."""
    home = tmp_path_factory.mktemp("emolens-home")
    weights = SHARED / "weights"
    if not weights.is_dir():
        if _REQUIRE_SHARED:
            pytest.fail(f"{weights} is missing: {_MISSING}", pytrace=False)
        return home  # tests that need these weights skip through shared_path()
    for file in weights.iterdir():
        shutil.copy(file, home / file.name)
    return home


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(seeded_home: Path) -> Iterator[None]:
    """The whole session uses the seeded cache, and never the real network.

    Any accidental upstream fetch goes to a closed loopback port and fails fast. Tests that change
    these variables use ``monkeypatch``, which restores them afterwards.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMOLENS_HOME", str(seeded_home))
        patch.delenv("EMOLENS_OFFLINE", raising=False)
        patch.setenv("EMOLENS_MIRROR", "http://127.0.0.1:9")
        yield


@pytest.fixture(autouse=True)
def _forget_download_failures() -> Iterator[None]:
    """Downloads that failed are remembered for the process: each test starts with a clean slate."""
    from emolens.weights import forget_failures

    forget_failures()
    yield
    forget_failures()


@pytest.fixture
def registries() -> Iterator[None]:
    """Models, detectors and architectures registered by the test are undone when it ends."""
    import emolens
    from emolens.detectors import DETECTORS
    from emolens.models import ARCHITECTURES, MODELS

    with MODELS.temporary_changes(), DETECTORS.temporary_changes(), ARCHITECTURES.temporary_changes():
        yield
    emolens.clear_cache()  # shared Analyzers built from a test's specs go too


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    return home


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[object]:
    """``serve(folder) -> base URL``: a loopback HTTP server for the folder, stopped after the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fer_samples(fer_val: Path, per_class: int) -> tuple[list[Path], list[str]]:
    """The first ``per_class`` val images of every class (sorted file names: deterministic)."""
    files, labels = [], []
    for folder in sorted(p for p in fer_val.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.jpg"))[:per_class]:
            files.append(file)
            labels.append(folder.name)
    return files, labels


@pytest.fixture(scope="session")
def voted_tiny(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """FER2013 train/val subsets (40 / 15 images per class) with their rows of the FER+ vote tables."""
    root = tmp_path_factory.mktemp("voted") / "fer2013"
    source = shared / "datasets" / "fer2013"
    (root / "ferplus").mkdir(parents=True)
    for split, count in (("train", 40), ("val", 15)):
        with (source / "ferplus" / f"{split}.csv").open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            votes = {row[0]: row for row in reader}
        kept = []
        for folder in sorted((source / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for file in [f for f in sorted(folder.glob("*.jpg")) if f"{folder.name}/{f.name}" in votes][:count]:
                shutil.copy(file, root / split / folder.name / file.name)
                kept.append(votes[f"{folder.name}/{file.name}"])
        with (root / "ferplus" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(kept)
    return root
