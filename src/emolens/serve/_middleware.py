"""Around every request: its id, the API key, draining, metrics and one JSON access-log line.

A pure ASGI middleware (no body buffering): the request id is taken from ``X-Request-ID`` when the
client sends a sane one, else made up, and echoed on the answer. With an API key set, everything
but the health checks, the web app's files and the API docs needs ``Authorization: Bearer <key>``,
compared in constant time. Access-log lines carry no image data, no query string and no secrets.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._config import MAX_URL_BYTES
from ._errors import error_body
from ._service import Service

__all__ = ["ACCESS_LOG", "OPEN_PATHS", "ServerMiddleware", "configure_access_log"]

#: The logger of the access-log lines (one JSON object per line).
ACCESS_LOG = "emolens.serve.access"
#: Paths answered without an API key: health checks (load balancers), the web app's page and files (it asks
#: for the key), and the API docs.
OPEN_PATHS = ("/healthz", "/readyz", "/", "/static/", "/docs", "/openapi.json")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ANALYSIS = "/v1/analyze"
_METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})

access_log = logging.getLogger(ACCESS_LOG)
log = logging.getLogger("emolens.serve")


def configure_access_log() -> None:
    """Send access-log lines to stderr as they are (JSON), once; for ``emolens serve`` and its workers."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


def _is_open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and p != "/" and path.startswith(p)) for p in OPEN_PATHS)


class ServerMiddleware:
    """Request ids, API-key check, 503 while draining, metrics and access log for ``service``'s app."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        key = service.config.api_key
        self._key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        sent = headers.get("x-request-id", "")
        request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        path: str = scope["path"]
        status = 0  # none sent yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        analysis = path.startswith(_ANALYSIS)
        if analysis:
            self.service.metrics.in_flight.inc()
        try:
            answer = self._refusal(scope, path, headers)
            if answer is None:
                await self.app(scope, receive, send_with_id)
        except Exception:  # a bug: the client gets the JSON 500 with its request id, the log the traceback
            log.exception("emolens serve: unexpected error on %s %s (request %s)", scope["method"], path, request_id)
            if status:  # the answer had started: nothing more can be sent
                raise
            answer = JSONResponse(
                error_body("InternalError", "the server failed on this request; the error is in the server log"),
                status_code=500,
            )
        finally:
            if analysis:
                self.service.metrics.in_flight.dec()
        if answer is not None:
            await answer(scope, receive, send_with_id)
        self._record(scope, headers, request_id, status or 500, time.perf_counter() - started)

    def _record(self, scope: Scope, headers: Headers, request_id: str, status: int, seconds: float) -> None:
        """Metrics and the access-log line of one answered request."""
        method = scope["method"] if scope["method"] in _METHODS else "other"  # bounded label values
        self.service.metrics.observe(_route(scope, scope["path"]), method, status, seconds)
        line = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "method": method,
            "path": scope["path"][:200],
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": (scope.get("client") or ("", 0))[0],
            "bytes_in": _content_length(headers),
        }
        access_log.info(json.dumps(line))

    def _refusal(self, scope: Scope, path: str, headers: Headers) -> JSONResponse | None:
        """The answer for a request that is not let through, or ``None``."""
        length = len(scope.get("raw_path") or path.encode()) + len(scope.get("query_string", b""))
        if length > MAX_URL_BYTES:  # longer ones than uvicorn takes (16 KiB) get its own plain-text 400
            return JSONResponse(
                error_body("URITooLong", f"the URL is {length:,} bytes; this server takes at most {MAX_URL_BYTES:,}"),
                status_code=414,
            )
        if self.service.draining.is_set() and path not in ("/healthz", "/metrics"):
            self.service.metrics.shed("draining")
            return JSONResponse(
                error_body("ShuttingDown", "the server is shutting down; retry on another instance or shortly"),
                status_code=503,
                headers={"Retry-After": "5", "Connection": "close"},
            )
        if self._key is None or _is_open(path):
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key):
            return None
        problem = "a wrong API key" if token else "no API key"
        return JSONResponse(
            error_body(
                "Unauthorized",
                f"this server needs an API key and the request has {problem}; "
                "send the header 'Authorization: Bearer <key>' (ask the server's operator for the key)",
            ),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="emolens"'},
        )


def _route(scope: Scope, path: str) -> str:
    """The route template a request matched (bounded label values for metrics), also for refused requests."""
    matched = getattr(scope.get("route"), "path", None)
    if matched:
        return str(matched)
    if path.startswith("/static/"):
        return "/static"
    app = scope.get("app")
    known = {getattr(route, "path", None) for route in getattr(app, "routes", ())}
    return path if path in known else "other"


def _content_length(headers: Headers) -> Any:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 16 else None
