"""The REST API of ``emolens serve``, tested against a real server process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs emolens[serve]")
httpx = pytest.importorskip("httpx")

from tools.server import running_server  # noqa: E402

import emolens  # noqa: E402
from emolens import Analyzer  # noqa: E402
from emolens.serve import (  # noqa: E402
    STATUS_FOR_ERROR,
    AnalysisResultModel,
    BatchResponseModel,
    ErrorResponseModel,
    status_for,
)


@pytest.fixture(scope="module")
def server(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with the default settings."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running_server(log=log) as handle:
        yield handle.url
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with small limits: 1 request in flight, 64 KiB uploads, 1 MP images, 2 s body reads."""
    log = tmp_path_factory.mktemp("serve-tight") / "server.log"
    args = ["--model", "fast", "--max-in-flight", "1", "--max-upload-mb", "0.0625", "--max-megapixels", "1"]
    with running_server([*args, "--read-timeout", "2", "--max-files", "3"], log=log) as handle:
        yield handle.url


@pytest.fixture(scope="module")
def group_jpeg(photos: Path) -> bytes:
    return (photos / "group" / "multiface.jpg").read_bytes()


def _error(answer: httpx.Response, status: int, kind: str | None = None) -> str:
    """Check an error answer's status and JSON shape; return its message."""
    assert answer.status_code == status, answer.text
    body = ErrorResponseModel.model_validate(answer.json())
    assert "Traceback" not in answer.text
    if kind is not None:
        assert body.error.type == kind
    assert body.error.message
    return body.error.message


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


# --- the endpoints ---------------------------------------------------------------------------------


def test_health_and_readiness(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"] == "default"


def test_analyze_multipart_matches_in_process_analyzer(server: str, photos: Path, group_jpeg: bytes) -> None:
    answer = httpx.post(f"{server}/v1/analyze", files={"file": ("multiface.jpg", group_jpeg, "image/jpeg")})
    assert answer.status_code == 200
    body = answer.json()
    AnalysisResultModel.model_validate(body)  # extra keys forbidden: the schema is exact
    expected = Analyzer().analyze(group_jpeg).to_dict()
    assert len(body["faces"]) == 6
    assert body["source"] is None
    assert [f["box"] for f in body["faces"]] == [f["box"] for f in expected["faces"]]
    assert [f["label"] for f in body["faces"]] == [f["label"] for f in expected["faces"]]
    for got, want in zip(body["faces"], expected["faces"], strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_analyze_raw_body_and_query_parameters(server: str, group_jpeg: bytes) -> None:
    answer = httpx.post(
        f"{server}/v1/analyze?model=fast&detector=haar",
        content=group_jpeg,
        headers={"content-type": "image/jpeg"},
    )
    assert answer.status_code == 200
    assert (answer.json()["model"], answer.json()["detector"]) == ("fast", "haar")
    # A plain grey image has no face: fallback decides whether the whole image is classified.
    crop = _tiny_png()
    whole = httpx.post(f"{server}/v1/analyze", content=crop).json()
    assert [f["fallback"] for f in whole["faces"]] == [True]
    none = httpx.post(f"{server}/v1/analyze?fallback=false", content=crop).json()
    assert none["faces"] == []
    skipped = httpx.post(f"{server}/v1/analyze?detector=none", content=crop).json()
    assert skipped["detector"] == "none" and skipped["faces"][0]["fallback"] is False
    sides = sorted(min(f["box"]["width"], f["box"]["height"]) for f in answer.json()["faces"])
    threshold = sides[len(sides) // 2]
    big_only = httpx.post(f"{server}/v1/analyze?min_face_size={threshold}&detector=haar", content=group_jpeg).json()
    assert len(big_only["faces"]) == sum(side >= threshold for side in sides) < len(sides)


def test_batch_keeps_going_past_a_bad_file(server: str, group_jpeg: bytes) -> None:
    files = [
        ("files", ("group.jpg", group_jpeg, "image/jpeg")),
        ("files", ("notes.txt", b"not an image", "text/plain")),
        ("files", ("broken.jpg", group_jpeg[:2000], "image/jpeg")),
        ("files", ("group2.jpg", group_jpeg, "image/jpeg")),
    ]
    answer = httpx.post(f"{server}/v1/analyze/batch", files=files)
    assert answer.status_code == 200
    body = BatchResponseModel.model_validate(answer.json())
    names = [item.filename for item in body.results]
    assert names == ["group.jpg", "notes.txt", "broken.jpg", "group2.jpg"]
    ok = [item for item in body.results if item.result is not None]
    assert [item.filename for item in ok] == ["group.jpg", "group2.jpg"]
    assert all(len(item.result.faces) == 6 for item in ok if item.result)
    errors = {item.filename: item.error for item in body.results if item.error is not None}
    assert set(errors) == {"notes.txt", "broken.jpg"}
    assert all(e.type == "InvalidImageError" for e in errors.values())
    # Every entry has both keys, one of them null: the shape never depends on the input.
    assert all(set(item) == {"filename", "result", "error"} for item in answer.json()["results"])


def test_models_schema_and_openapi(server: str) -> None:
    models = httpx.get(f"{server}/v1/models").json()
    names = [m["name"] for m in models["models"]]
    assert models["default_model"] == "default" and "fast" in names
    assert {"yunet", "haar"} <= {d["name"] for d in models["detectors"]}
    assert models["label_colors"]["happy"].startswith("#")
    schema = httpx.get(f"{server}/v1/schema").json()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {
        "source", "image", "detector", "model", "detector_id", "model_id", "faces", "timings_ms"
    }  # fmt: skip
    openapi = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/analyze", "/v1/analyze/batch", "/v1/models", "/healthz", "/readyz"} <= set(openapi["paths"])
    operations = [op["operationId"] for path in openapi["paths"].values() for op in path.values()]
    assert len(operations) == len(set(operations))  # unique, as OpenAPI requires (client generators rely on it)
    analyze = openapi["paths"]["/v1/analyze"]["post"]
    assert "multipart/form-data" in analyze["requestBody"]["content"]
    assert {"200", "400", "401", "404", "413", "415", "503"} <= set(analyze["responses"])
    assert "AnalysisResultModel" in openapi["components"]["schemas"]
    assert httpx.get(f"{server}/docs").status_code == 200


def test_models_say_what_this_server_really_has(server: str, seeded_home: Path) -> None:
    """Offline, a model whose weights are not here is listed as unavailable, and asking for it says so
    without the server's paths or operator instructions."""
    models = {m["name"]: m for m in httpx.get(f"{server}/v1/models").json()["models"]}
    assert models["fast"]["available"] and models["default@v4"]["available"]  # the previous release is bundled
    assert not models["default@v2"]["available"]  # an older one is downloaded by hash, and never was here
    assert not models["hsemotion-b0-va"]["available"]  # not downloaded: the tests never reach the network
    assert models["default"]["identity"].startswith("emolens-consensus-default-v") and models["default"]["version"]
    current = models[f"default@{models['default']['version']}"]  # the current release, pinned by name
    assert current["identity"] == models["default"]["identity"] and current["labels"] == models["default"]["labels"]
    answer = httpx.post(f"{server}/v1/analyze", params={"model": "hsemotion-b0-va"}, content=b"\xff\xd8\xff")
    message = _error(answer, 503)
    assert str(seeded_home) not in message and "EMOLENS_" not in message and "/v1/models" in message


def test_web_app_is_served(server: str) -> None:
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "<title>emolens</title>" in page.text
    assert httpx.get(f"{server}/static/app.js").status_code == 200


# --- errors ------------------------------------------------------------------------------------------


def _every_error_class() -> list[type[emolens.EmolensError]]:
    import emolens.errors

    found = [getattr(emolens.errors, name) for name in emolens.errors.__all__]
    return [cls for cls in found if isinstance(cls, type) and issubclass(cls, emolens.EmolensError)]


#: What every class of the exception tree answers: the request's problems 4xx, a missing extra 501, weights the
#: server cannot provide 503, failures that are not the request's fault 500.
EXPECTED_STATUS = {
    "EmolensError": 500,
    "InvalidImageError": 400,
    "ImageTooLargeError": 413,
    "UnknownNameError": 404,
    "InvalidOptionError": 400,
    "MissingDependencyError": 501,
    "InvalidVideoError": 400,
    "DatasetError": 400,
    "WeightsError": 503,
    "WeightsUnavailableError": 503,
    "WeightsDownloadError": 503,
    "WeightsIntegrityError": 503,
    "InternalError": 500,
    "ModelError": 500,
}


@pytest.mark.parametrize("cls", _every_error_class(), ids=lambda cls: cls.__name__)
def test_every_error_class_has_its_status(cls: type[emolens.EmolensError]) -> None:
    """The table covers the whole tree (a class added to errors.py without a row here fails)."""
    import inspect

    positional = {"UnknownNameError": ("model", "nope", ("default",)), "MissingDependencyError": ("pkg", "x", "this")}
    keywords = {
        name: "x"
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    instance = cls(*positional.get(cls.__name__, ("message",)), **keywords)  # the status depends on the class alone
    assert status_for(instance) == EXPECTED_STATUS[cls.__name__]
    assert all(400 <= status < 600 for _, status in STATUS_FOR_ERROR)


@pytest.mark.parametrize(
    ("query", "status", "kind"),
    [
        ("model=nope", 404, "UnknownNameError"),
        ("model=../../etc/passwd", 404, "UnknownNameError"),  # never a path from a client
        ("model=/tmp/card.json", 404, "UnknownNameError"),
        ("detector=nope", 404, "UnknownNameError"),
        ("min_face_size=abc", 422, "InvalidOptionError"),
        ("min_face_size=-1", 422, "InvalidOptionError"),
        ("fallback=maybe", 422, "InvalidOptionError"),
    ],
)
def test_bad_parameters(server: str, group_jpeg: bytes, query: str, status: int, kind: str) -> None:
    _error(httpx.post(f"{server}/v1/analyze?{query}", content=group_jpeg), status, kind)


def test_unknown_model_suggests_names(server: str, group_jpeg: bytes) -> None:
    message = _error(httpx.post(f"{server}/v1/analyze?model=defualt", content=group_jpeg), 404)
    assert "'default'" in message


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "image/jpeg", 400),
        (b"%PDF-1.4 not an image", "application/octet-stream", 415),
        (b"{}", "application/json", 415),
        (b"hello", "text/plain", 415),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image/jpeg", 400),  # a JPEG that ends in its header
    ],
)
def test_unreadable_images(server: str, body: bytes, content_type: str, status: int) -> None:
    message = _error(httpx.post(f"{server}/v1/analyze", content=body, headers={"content-type": content_type}), status)
    assert "Traceback" not in message


def test_image_bytes_under_curls_default_content_type(server: str, group_jpeg: bytes) -> None:
    """`curl --data-binary @photo.jpg` says application/x-www-form-urlencoded: the bytes are an image, so it works."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    answer = httpx.post(f"{server}/v1/analyze", content=group_jpeg, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 6


def test_truncated_jpeg_is_400(server: str, group_jpeg: bytes) -> None:
    _error(httpx.post(f"{server}/v1/analyze", content=group_jpeg[: len(group_jpeg) // 50]), 400, "InvalidImageError")


def test_malformed_multipart_is_400(server: str) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    _error(httpx.post(f"{server}/v1/analyze", content=b"--xyz\r\ngarbage", headers=headers), 400)
    form_without_file = httpx.post(f"{server}/v1/analyze", data={"name": "value"}, files={"x": ("", b"", "")})
    assert form_without_file.status_code == 400


def test_multipart_body_cut_short_is_400_saying_so(server: str, group_jpeg: bytes) -> None:
    """A form whose body stops before its closing boundary was answered "the form has no file"."""
    whole = httpx.Request("POST", f"{server}/v1/analyze", files={"file": ("group.jpg", group_jpeg, "image/jpeg")})
    body, headers = whole.read(), {"content-type": whole.headers["content-type"]}
    assert httpx.post(f"{server}/v1/analyze", content=body, headers=headers).status_code == 200
    for cut in (body[: len(body) // 2], body[:-10]):
        message = _error(httpx.post(f"{server}/v1/analyze", content=cut, headers=headers), 400, "InvalidRequest")
        assert "closing boundary" in message and "cut off" in message


def test_health_probes_answer_head(server: str) -> None:
    """Load balancers and `curl -I` probe with HEAD: 200 without a body, not 405."""
    for path in ("/healthz", "/readyz"):
        answer = httpx.head(f"{server}{path}")
        assert answer.status_code == 200 and answer.content == b"", path


def test_routing_errors_are_json(server: str) -> None:
    _error(httpx.get(f"{server}/v1/nothing"), 404, "NotFound")
    _error(httpx.get(f"{server}/v1/analyze"), 405, "MethodNotAllowed")


# --- limits ------------------------------------------------------------------------------------------


def test_upload_limit(tight: str, group_jpeg: bytes) -> None:
    assert len(group_jpeg) > 64 * 1024
    message = _error(httpx.post(f"{tight}/v1/analyze", content=group_jpeg), 413, "UploadTooLarge")
    assert "--max-upload-mb" in message

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(group_jpeg), 8192):
            yield group_jpeg[start : start + 8192]

    _error(httpx.post(f"{tight}/v1/analyze", content=chunked()), 413, "UploadTooLarge")


def test_request_heads_that_arrive_too_slowly_are_cut_off(tight: str) -> None:
    """A client sending one header line a second held its connection forever (uvicorn times bodies, not heads):
    1,100 of them held every file descriptor of the server. Past --read-timeout (2 s here) it is closed."""
    host, port = tight.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for line in range(8):
            time.sleep(1)
            try:
                slow.sendall(b"X-Slow-%d: 1\r\n" % line)
                slow.settimeout(0.01)
                closed = slow.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
            if closed:
                break
    assert closed and time.monotonic() - started < 6
    with httpx.Client() as client:  # a prompt client keeps its connection for several requests
        assert all(client.get(f"{tight}/healthz").status_code == 200 for _ in range(3))


def test_pixel_bomb_is_refused_before_decoding(tight: str) -> None:
    bomb = _png_claiming(30_000, 30_000)
    started = time.perf_counter()
    message = _error(httpx.post(f"{tight}/v1/analyze", content=bomb), 413, "ImageTooLargeError")
    assert time.perf_counter() - started < 5
    assert "limit is 1 megapixels (emolens serve --max-megapixels)" in message and "max_pixels" not in message


def test_too_many_files(tight: str, fer_val: Path) -> None:
    """One limit and one answer, however many files: Starlette's own parser limit used to answer 400 past it."""
    crops = sorted((fer_val / "sad").glob("*.jpg"))[:12]
    for count in (4, 5, 12):
        files = [("files", (c.name, c.read_bytes(), "image/jpeg")) for c in crops[:count]]
        message = _error(httpx.post(f"{tight}/v1/analyze/batch", files=files), 413, "TooManyFiles")
        assert "at most 3" in message


def test_a_wrongly_named_file_field_is_refused_naming_the_right_one(server: str, group_jpeg: bytes) -> None:
    answer = httpx.post(f"{server}/v1/analyze", files={"image": ("a.jpg", group_jpeg, "image/jpeg")})
    assert "'image'" in _error(answer, 422, "InvalidRequest") and "'file'" in answer.text
    answer = httpx.post(f"{server}/v1/analyze/batch", files=[("file", ("a.jpg", group_jpeg, "image/jpeg"))])
    assert "'files'" in _error(answer, 422, "InvalidRequest")


def test_a_huge_model_name_is_not_echoed(server: str, group_jpeg: bytes) -> None:
    answer = httpx.post(f"{server}/v1/analyze", params={"model": "x" * 5_000}, content=group_jpeg)
    assert "5,000 characters" in _error(answer, 404, "UnknownNameError") and len(answer.content) < 2_000


def test_urls_over_the_limit_are_refused(server: str, group_jpeg: bytes) -> None:
    from emolens.serve import MAX_URL_BYTES

    answer = httpx.post(f"{server}/v1/analyze", params={"model": "x" * MAX_URL_BYTES}, content=group_jpeg)
    assert f"{MAX_URL_BYTES:,}" in _error(answer, 414, "URITooLong") and len(answer.content) < 500
    # Past what uvicorn reads (16 KiB) the answer is its own plain-text 400, at once (documented).
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:  # httpx refuses to send such a URL
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer before reading it all
            client.sendall(b"GET /v1/models?model=" + b"x" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(200).startswith(b"HTTP/1.1 400")
    assert httpx.get(f"{server}/healthz").status_code == 200


def _stalled_upload(base: str) -> socket.socket:
    """A client that promises 1,000 bytes, sends 10 and then waits: it holds a request slot."""
    host, port = base.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    client.sendall(
        b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
        + b"\xff" * 10
    )
    return client


def _read_answer(client: socket.socket, timeout: float) -> bytes:
    client.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def test_slow_client_gets_408_and_a_full_server_says_503(tight: str, fer_val: Path) -> None:
    crop = next((fer_val / "happy").glob("*.jpg")).read_bytes()
    started = time.monotonic()
    stalled = _stalled_upload(tight)
    try:
        time.sleep(0.3)
        # The only slot is taken: the next request is refused at once, with Retry-After.
        busy = httpx.post(f"{tight}/v1/analyze", content=crop)
        _error(busy, 503, "Busy")
        assert busy.headers["retry-after"] == "1"
        answer = _read_answer(stalled, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert 1.5 < time.monotonic() - started < 6  # --read-timeout 2
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "RequestTimeout"
    finally:
        stalled.close()
    # The slot came back: the server answers normally again.
    assert httpx.post(f"{tight}/v1/analyze", content=crop).status_code == 200


def test_analysis_time_limit(tmp_path: Path, group_jpeg: bytes) -> None:
    with running_server(["--model", "fast", "--request-timeout", "0.001"], log=tmp_path / "log") as handle:
        base = handle.url
        answer = httpx.post(f"{base}/v1/analyze", content=group_jpeg)
        _error(answer, 503, "Timeout")
        assert "retry-after" in answer.headers


def test_concurrent_requests_match_in_process_results(server: str, photos: Path) -> None:
    files = sorted((photos / "dlib-faces").glob("*.jpg"))[:6]
    analyzer = Analyzer()
    expected = {f.name: analyzer.analyze(f).to_dict() for f in files}

    def post(file: Path) -> tuple[str, dict[str, Any]]:
        answer = httpx.post(f"{server}/v1/analyze", content=file.read_bytes(), timeout=120)
        assert answer.status_code == 200, answer.text
        return file.name, answer.json()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(post, files * 2))
    for name, body in results:
        want = expected[name]
        assert [f["box"] for f in body["faces"]] == [f["box"] for f in want["faces"]]
        assert [f["label"] for f in body["faces"]] == [f["label"] for f in want["faces"]]
        for got, ref in zip(body["faces"], want["faces"], strict=True):
            assert got["probabilities"] == pytest.approx(ref["probabilities"], abs=1e-5)


def test_serve_config_is_validated() -> None:
    from emolens import InvalidOptionError
    from emolens.serve import ServeConfig

    with pytest.raises(InvalidOptionError, match="max_in_flight"):
        ServeConfig(max_in_flight=0)
    with pytest.raises(InvalidOptionError, match="request_timeout_s"):
        ServeConfig(request_timeout_s=-1)
    config = ServeConfig(models=("fast",), port=9000)
    assert ServeConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--request-timeout", "-1"], "must be more than 0"),
        (["--request-timeout", "inf"], "expected a finite number"),
        (["--read-timeout", "1e9"], "at most 86400"),
        (["--max-upload-mb", "nan"], "expected a finite number"),
        (["--max-megapixels", "-1"], "must be more than 0"),
        (["--batch-window-ms", "-5"], "must be 0 or more"),
        (["--models", "nope,fast"], "unknown model 'nope'"),  # it was advertised, and failed per request
        (["--model", "nope"], "unknown model 'nope'"),  # the server started and was never ready
        (["--detector", "yunte"], "Did you mean 'yunet'?"),
    ],
)
def test_cli_serve_reports_bad_settings_without_a_traceback(args: list[str], problem: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "emolens", "serve", "--port", "9", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and problem in done.stderr, done.stderr


def test_a_port_in_use_is_one_line_at_start() -> None:
    """A port something else holds is said in emolens' one line (uvicorn logged it in its own format)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "emolens", "serve", "--port", str(port), "--no-warmup"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"emolens: error: cannot listen on 127.0.0.1:{port}"), done.stderr
    assert "another --port" in done.stderr and "Traceback" not in done.stderr


def test_restricted_models(tmp_path: Path, group_jpeg: bytes) -> None:
    with running_server(["--model", "fast", "--models", "fast", "--no-warmup"], log=tmp_path / "log") as handle:
        base = handle.url
        assert [m["name"] for m in httpx.get(f"{base}/v1/models").json()["models"]] == ["fast"]
        _error(httpx.post(f"{base}/v1/analyze?model=default", content=group_jpeg), 404, "UnknownNameError")
        assert httpx.post(f"{base}/v1/analyze?model=fast", content=group_jpeg).status_code == 200


def test_threads_are_not_leaked_by_bad_requests(tight: str) -> None:
    """Hundreds of bad requests in a row leave the server answering (every slot given back)."""
    with httpx.Client() as client:
        for index in range(200):
            kind = index % 4
            if kind == 0:
                client.post(f"{tight}/v1/analyze", content=b"")
            elif kind == 1:
                client.post(f"{tight}/v1/analyze?model=nope", content=b"x")
            elif kind == 2:
                client.post(f"{tight}/v1/analyze", content=io.BytesIO(b"\x89PNG" + b"\x00" * 100).read())
            else:
                client.post(f"{tight}/v1/analyze", content=_png_claiming(5000, 5000))
        assert client.get(f"{tight}/readyz").status_code == 200
        ok = client.post(f"{tight}/v1/analyze?detector=none", content=_tiny_png())
        assert ok.status_code == 200, ok.text


def _tiny_png() -> bytes:
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))
    assert ok
    return bytes(data)


def test_the_event_loop_stays_responsive_during_analysis(server: str, group_jpeg: bytes) -> None:
    """/healthz answers while analyses run: CPU work is off the event loop."""
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                client.post(f"{server}/v1/analyze", content=group_jpeg)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.5)
        worst = 0.0
        for _ in range(10):
            started = time.perf_counter()
            assert httpx.get(f"{server}/healthz").status_code == 200
            worst = max(worst, time.perf_counter() - started)
        assert worst < 1.0
    finally:
        stop.set()
        worker.join()


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


def test_a_batch_of_small_files_of_huge_images_stays_within_the_memory_bound(tmp_path: Path) -> None:
    """32 flat 6324x6324 WebPs are 48 KB in all, and decode to 3.8 GB: a batch request holds each image only while
    its faces are found (it held all 32 at once, 3.8 GB, before), so one analysis thread stays within 1 GB."""
    import cv2
    import numpy as np

    flat = bytes(cv2.imencode(".webp", np.full((6324, 6324, 3), 120, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1])
    files = [("files", (f"{i}.webp", flat, "image/webp")) for i in range(32)]
    args = ["--model", "fast", "--threads", "1", "--no-warmup"]
    with running_server(args, log=tmp_path / "log") as handle:
        httpx.post(f"{handle.url}/v1/analyze", content=flat, timeout=120)  # models loaded before the baseline
        Path(f"/proc/{handle.pid}/clear_refs").write_text("5")
        baseline = _status_mb(handle.pid, "VmRSS")
        answer = httpx.post(f"{handle.url}/v1/analyze/batch", files=files, timeout=300)
        added = _status_mb(handle.pid, "VmHWM") - baseline
    assert answer.status_code == 200, answer.text
    entries = answer.json()["results"]
    assert len(entries) == 32 and all(e["result"]["image"]["width"] == 6324 for e in entries)
    assert added < 1024, f"the server added {added:.0f} MB for one batch (bound 1,024 MB per analysis thread)"


def test_hostile_uploads_at_once_stay_within_the_servers_memory_bound(tmp_path: Path, photos: Path) -> None:
    """Small files that used to cost gigabytes, sent together: each is refused or analysed, and the server's
    peak memory stays within threads x 1 GB + in-flight uploads (docs/reliability.md)."""
    import cv2
    from tools.hostile import hostile_uploads

    photo = cv2.imread(str(photos / "dlib-faces" / "2008_002470.jpg"))
    png = bytes(cv2.imencode(".png", cv2.resize(photo, (96, 72)))[1])
    uploads, expected = zip(*hostile_uploads(photo), strict=True)
    threads, in_flight = 2, 8
    args = ["--model", "fast", "--threads", str(threads), "--max-in-flight", str(in_flight), "--no-warmup"]
    with running_server(args, log=tmp_path / "log") as handle:
        httpx.post(f"{handle.url}/v1/analyze", content=png, timeout=60)  # models loaded before the baseline
        Path(f"/proc/{handle.pid}/clear_refs").write_text("5")
        baseline = _status_mb(handle.pid, "VmRSS")
        with ThreadPoolExecutor(len(uploads)) as pool:
            answers = list(
                pool.map(lambda body: httpx.post(f"{handle.url}/v1/analyze", content=body, timeout=120), uploads)
            )
        added = _status_mb(handle.pid, "VmHWM") - baseline
    statuses = tuple(answer.status_code for answer in answers)
    assert statuses == expected
    bound_mb = threads * 1024 + in_flight * 2 * 10
    assert added < bound_mb, f"the server added {added:.0f} MB (bound {bound_mb} MB)"
