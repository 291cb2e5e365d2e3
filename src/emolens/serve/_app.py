"""The FastAPI application: REST endpoints, error answers, limits, and the web app's static files.

The event loop only reads requests and writes answers; decoding, detection and classification run
in a bounded thread pool. A process takes at most ``max_in_flight`` requests at once (reading or
analysing) and answers the next one at once with 503 and ``Retry-After``, so memory and latency
stay bounded under overload instead of a queue growing without limit.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message

from .. import __version__
from .._analyzer import Analyzer
from .._api import get_analyzer
from .._header import FORMATS, signature
from .._image import load_image
from ..detectors import DETECTORS
from ..errors import EmolensError, UnknownNameError
from ..labels import CANONICAL, COLORS, display_label
from ..models import MODELS
from ..types import AnalysisResult
from ._config import ServeConfig
from ._errors import RequestError, error_body
from ._schema import (
    AnalysisResultModel,
    BatchResponseModel,
    ErrorResponseModel,
    ModelsResponseModel,
    analysis_result_json_schema,
)

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("emolens.serve")
T = TypeVar("T")

_STATIC = resources.files("emolens.serve") / "static"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponseModel, "description": text}
    for status, text in {
        400: "Unreadable image or bad option",
        404: "Unknown detector or model",
        408: "The request body arrived too slowly",
        413: "Upload or image over the limit",
        415: "Not an image format emolens reads",
        422: "A parameter has the wrong type",
        503: "Busy (Retry-After), timed out, or weights unavailable",
    }.items()
}
_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "One image: a multipart form with a `file` field, or the raw bytes as the body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "Several images as `files` fields of a multipart form.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            }
        },
    }
}


# Query parameters of both analysis endpoints.
DetectorQuery = Annotated[str | None, Query(description="Detector name, 'auto' or 'none' (default: the server's)")]
ModelQuery = Annotated[str | None, Query(description="Registered model name (default: the server's)")]
FallbackQuery = Annotated[bool, Query(description="Classify the whole image when no face is found")]
MinFaceQuery = Annotated[int | None, Query(ge=0, le=100_000, description="Ignore faces smaller than this (pixels)")]


@dataclass(frozen=True, slots=True)
class _Upload:
    filename: str | None
    data: bytes


class _Slots:
    """The in-flight limit: a counter that refuses instead of waiting (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.used -= 1


class _Lease:
    """One taken slot; given back exactly once, by the request or, once handed to the pool, by its work."""

    def __init__(self, slots: _Slots) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._held = True
        self.in_pool = False

    def give_back(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._slots.give_back()


@dataclass(frozen=True)
class _Options:
    """What one analysis request asks for, with the server's defaults filled in and names checked."""

    detector: str | None
    model: str
    fallback: bool
    min_face_size: int


class _Service:
    """One server process's state: its configuration, inference pool, in-flight slots and readiness."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.pool = ThreadPoolExecutor(config.threads, thread_name_prefix="emolens-analyze")
        self.slots = _Slots(config.max_in_flight)
        self.ready = threading.Event()
        self.startup_error: str | None = None
        self.loaded_models: set[str] = set()
        self._loaded_lock = threading.Lock()

    # --- names a client may use -------------------------------------------------------------
    def model_names(self) -> list[str]:
        names = list(self.config.models) if self.config.models is not None else MODELS.names()
        return names if self.config.model in names else [self.config.model, *names]

    def model_source(self, requested: str | None) -> str:
        """The model for a request. A client's string is only ever matched against names, never used as a path."""
        if requested is None or requested == self.config.model:
            return self.config.model
        names = self.model_names()
        if requested not in names:
            raise UnknownNameError("model", requested, names)
        return requested

    def detector_name(self, requested: str | None) -> str | None:
        name = self.config.detector if requested is None else requested
        if name.lower() == "none":
            return None
        known = ["auto", *DETECTORS.names()]
        if name not in known:
            raise UnknownNameError("detector", name, [*known, "none"])
        return name

    def options(self, detector: str | None, model: str | None, fallback: bool, min_face_size: int | None) -> _Options:
        """A request's query parameters resolved: unknown names are refused before any upload is read."""
        min_size = self.config.min_face_size if min_face_size is None else min_face_size
        return _Options(self.detector_name(detector), self.model_source(model), fallback, min_size)

    # --- work in the pool ---------------------------------------------------------------------
    def analyzer(self, detector: str | None, model: str) -> Analyzer:
        analyzer = get_analyzer(detector, model, max_pixels=self.config.max_pixels)
        with self._loaded_lock:
            self.loaded_models.add(analyzer.model.name)
        return analyzer

    def start_up(self) -> None:
        """Load (and warm up) the default pipeline; ``/readyz`` answers 200 once this has finished."""
        try:
            analyzer = self.analyzer(self.detector_name(None), self.config.model)
            if self.config.warmup:
                analyzer.warmup()
        except EmolensError as exc:
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.error("emolens serve: the default pipeline could not be loaded: %s", exc)
        else:
            self.ready.set()

    async def run(self, work: Callable[[], T], lease: _Lease) -> T:
        """Run ``work`` in the pool within the request time limit; the lease is given back when the work ends.

        On time-out the client is answered at once; work already running cannot be interrupted, so its
        slot stays taken until it ends (work still queued is cancelled and gives it back at once).
        """
        future: Future[T] = self.pool.submit(work)
        lease.in_pool = True
        future.add_done_callback(lambda _: lease.give_back())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.request_timeout_s)
        except TimeoutError:
            raise RequestError(
                503,
                "Timeout",
                f"the analysis took longer than {self.config.request_timeout_s:g} s; "
                "send a smaller image or retry when the server is less busy",
                retry_after=5,
            ) from None


# --- reading requests -----------------------------------------------------------------------------


async def _read_body(request: Request, config: ServeConfig) -> bytes:
    """The whole body, refused early when it is too large (413) or arrives too slowly (408)."""
    limit = config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "InvalidRequest", f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, "UploadTooLarge", _too_large(int(declared), limit))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.read_timeout_s
    chunks: list[bytes] = []
    size = 0
    stream = request.stream().__aiter__()
    while True:
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(stream.__anext__(), remaining)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestError(
                408, "RequestTimeout", f"the request body did not arrive within {config.read_timeout_s:g} s"
            ) from None
        except ClientDisconnect:
            raise RequestError(400, "ClientDisconnect", "the client closed the connection mid-request") from None
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "UploadTooLarge", _too_large(size, limit, at_least=True))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    more = "at least " if at_least else ""
    return (
        f"the upload is {more}{size:,} bytes; this server accepts at most {limit:,} "
        "(emolens serve --max-upload-mb); send a smaller image"
    )


async def _uploads(request: Request, config: ServeConfig, *, field: str, many: bool) -> list[_Upload]:
    """The images of a request: multipart files (under ``field``, or any file field), or the raw body."""
    body = await _read_body(request, config)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        if many:
            raise RequestError(
                415, "UnsupportedMediaType", "send the images as a multipart/form-data form with 'files' fields"
            )
        # curl --data-binary sends form-urlencoded unless told otherwise: the bytes decide when they are an image.
        textual = ("text/", "application/json", "application/x-www-form-urlencoded")
        if content_type.lower().startswith(textual) and signature(body) is None:
            raise RequestError(
                415, "UnsupportedMediaType", f"expected an image or a multipart form, got Content-Type {content_type!r}"
            )
        return [_Upload(None, body)]

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(
            max_files=config.max_files + 1, max_fields=config.max_files + 1
        )
    except Exception as exc:  # python-multipart and Starlette raise several types for malformed forms
        detail = str(getattr(exc, "detail", None) or exc or type(exc).__name__)
        if "too many files" in detail.lower():  # one limit and one answer, however many files were sent
            raise RequestError(413, "TooManyFiles", f"send at most {config.max_files} files per request") from None
        raise RequestError(400, "InvalidRequest", f"malformed multipart form: {detail[:200]}") from None
    try:
        files = [value for key, value in form.multi_items() if not isinstance(value, str) and key == field]
        others = sorted({key for key, value in form.multi_items() if not isinstance(value, str) and key != field})
        if others:
            names = ", ".join(repr(name[:40]) for name in others[:3])
            raise RequestError(
                422, "InvalidRequest", f"the form sends a file as {names}; send it as the {field!r} field"
            )
        if not files:
            raise RequestError(400, "InvalidRequest", f"the form has no file; send the image as the {field!r} field")
        if not many and len(files) > 1:
            raise RequestError(400, "InvalidRequest", "send one image here, or several to /v1/analyze/batch")
        return [_Upload(upload.filename, await upload.read()) for upload in files]
    finally:
        await form.close()


def _load(upload: _Upload, config: ServeConfig) -> Any:
    """Decode an upload (415 when it is not an image format emolens reads at all)."""
    what = repr(upload.filename) if upload.filename else "the upload"
    if not upload.data:
        raise RequestError(400, "InvalidImageError", f"{what} is empty (0 bytes); send an image")
    if signature(upload.data) is None:
        raise RequestError(
            415,
            "InvalidImageError",
            f"{what} is not an image emolens reads ({', '.join(FORMATS)}); check the file and its type",
        )
    try:
        return load_image(upload.data, max_pixels=config.max_pixels).bgr
    except EmolensError as exc:
        raise RequestError.from_emolens(exc, max_pixels=config.max_pixels) from None


# --- the application ---------------------------------------------------------------------------------


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The server for ``config``: ``uvicorn.run(create_app(...))`` or ``emolens serve``."""
    config = config or ServeConfig()
    service = _Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(service.pool, service.start_up)  # /healthz answers while this loads
        yield
        service.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="emolens",
        version=__version__,
        summary="Find every face in an image and classify its emotion.",
        description=(
            "Each result is `AnalysisResult.to_dict()`, the same JSON as `emolens analyze --json`. "
            'Errors are `{"error": {"type": ..., "message": ...}}`; 503 answers carry `Retry-After`.'
        ),
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return JSONResponse(error_body(exc.kind, exc.message), status_code=exc.status, headers=headers)

    @app.exception_handler(EmolensError)
    async def _emolens_error(request: Request, exc: EmolensError) -> JSONResponse:
        return await _request_error(request, RequestError.from_emolens(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'invalid')}"
            for error in exc.errors()
        )
        return JSONResponse(error_body("InvalidOptionError", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("emolens serve: unexpected error on %s %s", request.method, request.url.path)
        message = "the server failed on this request; the error is in the server log"
        return JSONResponse(error_body("InternalError", message), status_code=500)

    async def guarded(handle: Callable[[_Lease], Awaitable[T]]) -> T:
        """Take an in-flight slot for the request (503 at once when none is free) and make sure it is given back."""
        if not service.slots.try_take():
            raise RequestError(
                503,
                "Busy",
                f"the server is at its limit of {config.max_in_flight} requests at once; retry shortly",
                retry_after=1,
            )
        lease = _Lease(service.slots)
        try:
            return await handle(lease)
        finally:
            if not lease.in_pool:
                lease.give_back()

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The default model is loaded and warmed up",
        responses={503: {"model": ErrorResponseModel, "description": "Still loading, or loading failed"}},
    )
    async def readyz() -> JSONResponse:
        if service.ready.is_set():
            return JSONResponse({"status": "ready", "model": config.model, "detector": config.detector})
        if service.startup_error is not None:
            return JSONResponse(error_body("NotReady", service.startup_error), status_code=503)
        return JSONResponse(
            error_body("NotReady", "loading the default model"), status_code=503, headers={"Retry-After": "1"}
        )

    @app.get("/v1/models", tags=["analysis"], summary="Models and detectors a request may name")
    async def models() -> ModelsResponseModel:
        registered = {spec.name: spec for spec in MODELS.specs()}
        infos = []
        for name in service.model_names():
            spec = registered.get(name)
            infos.append(
                {
                    "name": name,
                    "description": spec.description if spec else "given by the server's operator",
                    "labels": list(spec.labels) if spec else [],
                    "label_set": spec.label_set.name if spec else "",
                    "valence_arousal": spec.valence_arousal if spec else False,
                    "runtime": spec.runtime if spec else "torch",
                    "loaded": name in service.loaded_models,
                }
            )
        detectors = [
            {
                "name": spec.name,
                "description": spec.description,
                "available": all(importlib.util.find_spec(module) is not None for module in spec.requires),
            }
            for spec in DETECTORS.specs()
        ]
        return ModelsResponseModel.model_validate(
            {
                "default_model": config.model,
                "default_detector": config.detector,
                "label_colors": COLORS,
                "display_names": {label: display_label(label) for label in CANONICAL},
                "models": infos,
                "detectors": detectors,
            }
        )

    @app.get("/v1/schema", tags=["analysis"], summary="JSON Schema of one analysis result")
    async def schema() -> dict[str, Any]:
        return analysis_result_json_schema()

    @app.post(
        "/v1/analyze",
        tags=["analysis"],
        summary="Analyse one image",
        response_model=AnalysisResultModel,
        responses=_ERRORS,
        openapi_extra=_IMAGE_BODY,
    )
    async def analyze(
        request: Request,
        detector: DetectorQuery = None,
        model: ModelQuery = None,
        fallback: FallbackQuery = True,
        min_face_size: MinFaceQuery = None,
    ) -> JSONResponse:
        options = service.options(detector, model, fallback, min_face_size)

        async def handle(lease: _Lease) -> JSONResponse:
            (upload,) = await _uploads(request, config, field="file", many=False)

            def work() -> dict[str, Any]:
                image = _load(upload, config)
                analyzer = service.analyzer(options.detector, options.model)
                return analyzer.analyze(image, fallback=options.fallback, min_face_size=options.min_face_size).to_dict()

            return JSONResponse(await service.run(work, lease))

        return await guarded(handle)

    @app.post(
        "/v1/analyze/batch",
        tags=["analysis"],
        summary="Analyse several images; a file that fails is an error entry, not a failed request",
        response_model=BatchResponseModel,
        responses=_ERRORS,
        openapi_extra=_BATCH_BODY,
    )
    async def analyze_batch(
        request: Request,
        detector: DetectorQuery = None,
        model: ModelQuery = None,
        fallback: FallbackQuery = True,
        min_face_size: MinFaceQuery = None,
    ) -> JSONResponse:
        options = service.options(detector, model, fallback, min_face_size)

        async def handle(lease: _Lease) -> JSONResponse:
            uploads = await _uploads(request, config, field="files", many=True)
            if len(uploads) > config.max_files:
                raise RequestError(413, "TooManyFiles", f"send at most {config.max_files} files per request")

            def work() -> list[dict[str, Any]]:
                analyzer = service.analyzer(options.detector, options.model)
                return _analyze_each(analyzer, uploads, config, options)

            return JSONResponse({"results": await service.run(work, lease)})

        return await guarded(handle)

    index = _STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    async def web_app() -> FileResponse:
        return FileResponse(str(index), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
    return app


def _analyze_each(
    analyzer: Analyzer, uploads: Sequence[_Upload], config: ServeConfig, options: _Options
) -> list[dict[str, Any]]:
    """One entry per upload, in order: the readable images are classified in one batch, the others are errors."""
    entries: list[dict[str, Any]] = [{"filename": u.filename, "result": None, "error": None} for u in uploads]
    images: list[tuple[int, Any]] = []
    for index, upload in enumerate(uploads):
        try:
            images.append((index, _load(upload, config)))
        except RequestError as exc:
            entries[index]["error"] = {"type": exc.kind, "message": exc.message}
    try:
        results: list[AnalysisResult] = analyzer.analyze_batch(
            [image for _, image in images], fallback=options.fallback, min_face_size=options.min_face_size
        )
    except EmolensError:  # one image broke the batch: analyse them one by one to find which
        results = []
        for index, image in images:
            try:
                results.append(analyzer.analyze(image, fallback=options.fallback, min_face_size=options.min_face_size))
            except EmolensError as exc:
                entries[index]["error"] = {"type": type(exc).__name__, "message": str(exc)}
        images = [(index, image) for index, image in images if entries[index]["error"] is None]
    for (index, _), result in zip(images, results, strict=True):
        entries[index]["result"] = result.to_dict()
    return entries


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker process started by ``emolens serve --workers N`` (config from the environment)."""
    return create_app(ServeConfig.from_env())
