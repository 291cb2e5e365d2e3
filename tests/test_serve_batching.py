"""Micro-batching in the server: the faces of concurrent requests share one forward pass, with the same
answers as each request alone; a request alone never waits; one request's failure stays its own."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from tools.server import running_server  # noqa: E402

from emolens import Analyzer, Detected, InvalidOptionError, ModelError  # noqa: E402
from emolens.serve import FaceBatcher  # noqa: E402
from emolens.types import AnalysisResult  # noqa: E402


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(model="fast", precision="float32")


@pytest.fixture(scope="module")
def detected(analyzer: Analyzer, photos: Path) -> list[Detected]:
    """Three real photos after detection (27 faces in all)."""
    files = sorted((photos / "dlib-faces").glob("*.jpg"))[:3]
    found = [analyzer.detect(cv2.imread(str(f))) for f in files]
    assert all(d.candidates for d in found)
    return found


def _probabilities(results: Sequence[AnalysisResult]) -> np.ndarray:
    return np.array([face.probabilities for result in results for face in result.faces])


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for another thread to reach a state (the batcher's own, read for the test's ordering)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def test_requests_that_arrive_together_share_one_forward_pass(analyzer: Analyzer, detected: list[Detected]) -> None:
    passes: list[int] = []
    batcher = FaceBatcher(window_s=1.0, on_pass=passes.append)
    answers: dict[str, list[AnalysisResult]] = {}

    def second_request() -> None:
        with batcher.detecting() as slot:  # still detecting while the first request's faces wait for it
            _until(lambda: batcher._leading, "the first request leads")
            answers["second"] = batcher.classify(analyzer, detected[1:], slot=slot)

    worker = threading.Thread(target=second_request)
    worker.start()
    _until(lambda: batcher._detecting == 1, "the second request is on its way")
    answers["first"] = batcher.classify(analyzer, detected[:1])
    worker.join(60)
    assert passes == [2], "one forward pass served both requests"
    alone = _probabilities(analyzer.classify(detected[:1])), _probabilities(analyzer.classify(detected[1:]))
    assert np.abs(_probabilities(answers["first"]) - alone[0]).max() < 1e-5
    assert np.abs(_probabilities(answers["second"]) - alone[1]).max() < 1e-5
    assert [r.faces[0].box for r in answers["second"]] == [r.faces[0].box for r in analyzer.classify(detected[1:])]


def test_a_request_alone_does_not_wait(analyzer: Analyzer, detected: list[Detected]) -> None:
    analyzer.classify(detected)  # warm
    batcher = FaceBatcher(window_s=1.0)
    started = time.perf_counter()
    for _ in range(5):
        results = batcher.classify(analyzer, detected)
    assert time.perf_counter() - started < 4.0, "five requests alone would take 5 s if each waited the window"
    assert len(results) == 3 and all(r.faces for r in results)


def test_the_window_is_checked() -> None:
    for bad in (-0.1, float("inf"), float("nan"), 2.0, True):
        with pytest.raises(InvalidOptionError, match="window_s"):
            FaceBatcher(window_s=bad)


class _FailsOn:
    """An analyzer stand-in whose forward pass fails whenever ``bad`` is among the images."""

    def __init__(self, analyzer: Analyzer, bad: Detected) -> None:
        self.analyzer, self.bad = analyzer, bad

    def classify(self, found: Sequence[Detected]) -> list[AnalysisResult]:
        if any(d is self.bad for d in found):
            raise ModelError("the model returned non-finite values", component="stand-in")
        return self.analyzer.classify(found)


def test_one_requests_failure_does_not_fail_the_others(analyzer: Analyzer, detected: list[Detected]) -> None:
    stand_in: Any = _FailsOn(analyzer, detected[2])
    passes: list[int] = []
    batcher = FaceBatcher(window_s=1.0, on_pass=passes.append)
    outcome: dict[str, Any] = {}
    all_detecting = threading.Barrier(3)

    def request(name: str, found: list[Detected]) -> None:
        with batcher.detecting() as slot:
            all_detecting.wait(30)  # the first to classify waits for the two others: one shared pass
            try:
                outcome[name] = batcher.classify(stand_in, found, slot=slot)
            except ModelError as exc:
                outcome[name] = exc

    workers = [threading.Thread(target=request, args=(n, [d])) for n, d in zip("abc", detected, strict=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert passes == [3], "the three requests met in one pass, which failed and was split"
    assert isinstance(outcome["c"], ModelError)
    for name, index in (("a", 0), ("b", 1)):
        expected = _probabilities(analyzer.classify([detected[index]]))
        assert np.abs(_probabilities(outcome[name]) - expected).max() < 1e-5


def test_server_batches_concurrent_requests_with_unchanged_answers(photos: Path, tmp_path: Path) -> None:
    files = sorted((photos / "dlib-faces").glob("*.jpg"))[:4]
    reference = Analyzer(model="fast", precision="float32")
    expected = {f.name: reference.analyze(f).to_dict() for f in files}
    args = ["--model", "fast", "--precision", "float32", "--threads", "2", "--batch-window-ms", "500"]
    args += ["--max-in-flight", "16"]
    with running_server(args, log=tmp_path / "log") as handle:

        def post(file: Path) -> tuple[str, dict[str, Any]]:
            answer = httpx.post(f"{handle.url}/v1/analyze", content=file.read_bytes(), timeout=120)
            assert answer.status_code == 200, answer.text
            return file.name, answer.json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, files * 6))
        metrics = httpx.get(f"{handle.url}/metrics").text
    for name, body in results:
        want = expected[name]
        assert [f["box"] for f in body["faces"]] == [f["box"] for f in want["faces"]]
        for got, ref in zip(body["faces"], want["faces"], strict=True):
            assert got["probabilities"] == pytest.approx(ref["probabilities"], abs=1e-5)

    def counter(name: str) -> float:
        match = re.search(rf"^{name}_total (\S+)$", metrics, re.MULTILINE)
        assert match, metrics
        return float(match.group(1))

    served, passes = counter("emolens_classify_pass_requests"), counter("emolens_classify_passes")
    assert served >= len(results)  # the warm-up's pass is counted too
    assert passes < served, "some forward passes served more than one request"
