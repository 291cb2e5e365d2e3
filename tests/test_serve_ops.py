"""Running ``emolens serve`` for others: API key, refusal to expose without one, metrics, access log, CORS, drain.

Each behaviour is tested against a real server process, as an operator would meet it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs emolens[serve]")
httpx = pytest.importorskip("httpx")
parser = pytest.importorskip("prometheus_client.parser", reason="needs emolens[serve]")

from tools.server import running_server  # noqa: E402

KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def group_jpeg(photos: Path) -> bytes:
    return (photos / "group" / "multiface.jpg").read_bytes()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server that wants an API key (read from a file); yields its URL and its log."""
    folder = tmp_path_factory.mktemp("serve-keyed")
    key_file = folder / "key"
    key_file.write_text(KEY + "\n")
    log = folder / "server.log"
    with running_server(["--model", "fast", "--api-key-file", str(key_file)], log=log) as handle:
        yield handle.url, log
    assert "Traceback" not in log.read_text()


def _call(app: object, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request to an app in this process, without its start-up (no models are loaded)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(call())


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _metrics(url: str, **kwargs: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed as Prometheus text: (name, sorted labels) -> value."""
    answer = httpx.get(f"{url}/metrics", **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _analyze_count(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    key = ("emolens_http_requests_total", (("method", "POST"), ("route", "/v1/analyze"), ("status", "200")))
    return samples.get(key, 0.0)


def test_with_a_key_set_requests_need_it(keyed: tuple[str, Path], group_jpeg: bytes) -> None:
    url, _ = keyed
    for headers in ({}, _auth("wrong-key-0123456789"), {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        answer = httpx.post(f"{url}/v1/analyze", content=group_jpeg, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"]["type"] == "Unauthorized" and "Bearer" in answer.json()["error"]["message"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert KEY not in answer.text
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    # paths that only look open are not
    for path in ("//v1/models", "/static/../v1/models", "/%761/models", "/v1/models/", "/docs/../v1/models"):
        assert httpx.get(f"{url}{path}").status_code in (401, 404), path
    assert httpx.head(f"{url}/v1/models").status_code in (401, 405)
    answer = httpx.post(f"{url}/v1/analyze", content=group_jpeg, headers=_auth())
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 6
    assert httpx.get(f"{url}/v1/models", headers=_auth()).status_code == 200
    # open without a key: health checks for load balancers, the web app (it asks for the key), the API docs
    for path in (
        "/healthz",
        "/readyz",
        "/",
        "/static/app.js",
        "/docs",
        "/static/swagger/swagger-ui.css",
        "/openapi.json",
    ):
        assert httpx.get(f"{url}{path}").status_code == 200, path


def test_request_ids_are_echoed_or_made_and_logged_as_json(keyed: tuple[str, Path], group_jpeg: bytes) -> None:
    url, log = keyed
    mine = httpx.post(f"{url}/v1/analyze", content=group_jpeg, headers={**_auth(), "X-Request-ID": "trace-42.a"})
    assert mine.headers["x-request-id"] == "trace-42.a"
    made = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "no spaces or\x7f allowed"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    refused = httpx.get(f"{url}/v1/models")
    time.sleep(0.5)  # the log line is written after the answer
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["trace-42.a"]["status"] == 200 and by_id["trace-42.a"]["path"] == "/v1/analyze"
    assert by_id["trace-42.a"]["bytes_in"] == len(group_jpeg) and by_id["trace-42.a"]["duration_ms"] > 0
    assert by_id[refused.headers["x-request-id"]]["status"] == 401
    assert KEY not in log.read_text()  # no secrets (and no image data) in the log
    assert all(set(line) == set(lines[0]) for line in lines)


def test_metrics_parse_and_count_the_requests_just_made(keyed: tuple[str, Path], group_jpeg: bytes) -> None:
    url, _ = keyed
    before = _metrics(url, headers=_auth())
    for _ in range(3):
        assert httpx.post(f"{url}/v1/analyze", content=group_jpeg, headers=_auth()).status_code == 200
    after = _metrics(url, headers=_auth())
    assert _analyze_count(after) - _analyze_count(before) == 3
    assert after[("emolens_faces_analysed_total", ())] - before[("emolens_faces_analysed_total", ())] == 18
    assert after[("emolens_ready", ())] == 1 and after[("emolens_requests_in_flight", ())] == 0
    assert any(name == "emolens_model_loaded" and dict(labels)["model"] == "fast" for name, labels in after)
    assert ("emolens_requests_shed_total", (("reason", "busy"),)) in after
    latency = ("emolens_http_request_duration_seconds_count", (("route", "/v1/analyze"),))
    assert after[latency] - before.get(latency, 0) == 3


def test_serving_every_address_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EMOLENS_API_KEY"}
    command = [sys.executable, "-m", "emolens", "serve", "--host", "0.0.0.0", "--port", "9"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in done.stderr, message
    assert "API key" in message and "--no-auth" in message and "EMOLENS_API_KEY" in message


def test_no_auth_serves_every_address_when_asked(tmp_path: Path, group_jpeg: bytes) -> None:
    args = ["--host", "0.0.0.0", "--no-auth", "--model", "fast", "--no-warmup"]
    with running_server(args, log=tmp_path / "server.log") as handle:
        assert httpx.post(f"{handle.url}/v1/analyze", content=group_jpeg).status_code == 200


def test_loopback_means_loopback() -> None:
    from emolens.serve import ServeConfig

    assert all(ServeConfig(host=host).loopback for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(ServeConfig(host=host).loopback for host in ("0.0.0.0", "::", "127.evil.example", "10.0.0.1"))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--api-key", "short"], "16 to 256"),
        (["--api-key", KEY, "--api-key-file", "/etc/hostname"], "twice"),
        (["--cors-origin", "*"], "CORS origin"),
    ],
)
def test_bad_key_settings_are_one_line_errors(args: list[str], problem: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EMOLENS_API_KEY"}
    command = [sys.executable, "-m", "emolens", "serve", "--port", "9", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0 and problem in done.stderr and "Traceback" not in done.stderr


def test_cors_is_off_by_default_and_follows_the_allow_list(group_jpeg: bytes) -> None:
    from emolens.serve import ServeConfig, create_app

    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (((), False), (("https://app.example.com",), True), (("https://other.example",), False)):
        app = create_app(ServeConfig(cors_origins=origins, api_key=KEY, warmup=False))
        answer = _call(app, "OPTIONS", "/v1/analyze", headers=preflight)
        assert ("access-control-allow-origin" in answer.headers) == allowed, (origins, answer.headers)
        refused = _call(app, "POST", "/v1/analyze", content=group_jpeg, headers={"Origin": "https://app.example.com"})
        assert refused.status_code == 401  # the browser can read the refusal when the origin is allowed
        assert ("access-control-allow-origin" in refused.headers) == allowed


def test_draining_answers_503_and_health_stays_up() -> None:
    from emolens.serve import ServeConfig, create_app

    app = create_app(ServeConfig(warmup=False))
    app.state.service.draining.set()
    answer = _call(app, "POST", "/v1/analyze", content=b"\xff\xd8")
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "ShuttingDown"
    assert answer.headers["retry-after"] and answer.headers["connection"] == "close"
    assert _call(app, "GET", "/readyz").status_code == 503 and _call(app, "GET", "/healthz").status_code == 200


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(tmp_path: Path, group_jpeg: bytes) -> None:
    log = tmp_path / "server.log"
    files = [("files", (f"{i}.jpg", group_jpeg, "image/jpeg")) for i in range(12)]  # about a second of work
    with running_server(["--detector", "haar", "--request-timeout", "120"], log=log) as handle:
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{handle.url}/v1/analyze/batch", files=files, timeout=120))
        )
        sender.start()
        deadline = time.monotonic() + 60
        while _metrics(handle.url).get(("emolens_requests_in_flight", ()), 0) < 1:
            assert time.monotonic() < deadline and sender.is_alive(), "the batch request never started"
            time.sleep(0.02)
        os.kill(handle.pid, signal.SIGTERM)
        sender.join(120)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert len(answers[0].json()["results"]) == 12
        assert all(len(item["result"]["faces"]) >= 1 for item in answers[0].json()["results"])
        with pytest.raises(httpx.TransportError):  # the port is closed to new requests
            for _ in range(100):
                answer = httpx.get(f"{handle.url}/v1/models", timeout=2)
                assert answer.status_code == 503  # or answered 503 while it shuts down
                time.sleep(0.05)
        status = handle.process.wait(60)
    assert status == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_metrics_sum_over_workers(tmp_path: Path, group_jpeg: bytes) -> None:
    """With --workers 2 any worker answers a scrape with the requests of both."""
    log = tmp_path / "server.log"
    with running_server(["--model", "fast", "--workers", "2", "--no-warmup"], log=log) as handle:
        for _ in range(6):  # uvicorn spreads connections over the workers
            assert httpx.post(f"{handle.url}/v1/analyze", content=group_jpeg).status_code == 200
        pids = {
            int(line.split("[")[1].split("]")[0]) for line in log.read_text().splitlines() if "Started server" in line
        }
        assert len(pids) == 2
        for _ in range(4):
            assert _analyze_count(_metrics(handle.url)) == 6
    assert "Traceback" not in log.read_text()
