"""The analysis routes: ``POST /v1/analyze`` (one image) and ``POST /v1/analyze/batch`` (several).

Both take an in-flight slot first (503 at once when none is free), read and check the upload, then
decode, detect and classify in the service's pool within the request time limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from .._analyzer import Analyzer, Detected
from ..errors import EmolensError
from ._batcher import FaceBatcher
from ._config import ServeConfig
from ._errors import RequestError
from ._schema import AnalysisResultModel, BatchResponseModel, ErrorResponseModel
from ._service import RequestOptions, Service
from ._uploads import Upload, load_upload, uploads

__all__ = ["analysis_routes"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponseModel, "description": text}
    for status, text in {
        400: "Unreadable image or bad option",
        401: "An API key is needed (servers started with one)",
        404: "Unknown detector or model",
        408: "The request body arrived too slowly",
        413: "Upload or image over the limit",
        415: "Not an image format emolens reads",
        422: "A parameter has the wrong type, or a file is sent under the wrong field",
        503: "Busy (Retry-After), timed out, shutting down, or weights unavailable",
    }.items()
}
_BINARY = {"type": "string", "format": "binary"}
_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "One image: a multipart form with a `file` field, or the raw bytes as the body.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]}
            },
            "application/octet-stream": {"schema": _BINARY},
            "image/*": {"schema": _BINARY},
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
                    "properties": {"files": {"type": "array", "minItems": 1, "items": _BINARY}},
                    "required": ["files"],
                }
            }
        },
    }
}

# Query parameters of both analysis endpoints.
DetectorQuery = Annotated[str | None, Query(description="Detector name, 'auto' or 'none' (default: the server's)")]
ModelQuery = Annotated[
    str | None, Query(description="Model name, or a pinned version such as 'default@v4' (default: the server's)")
]
FallbackQuery = Annotated[bool, Query(description="Classify the whole image when no face is found")]
MinFaceQuery = Annotated[int | None, Query(ge=0, le=100_000, description="Ignore faces smaller than this (pixels)")]


def _request_options(
    request: Request,
    detector: DetectorQuery = None,
    model: ModelQuery = None,
    fallback: FallbackQuery = True,
    min_face_size: MinFaceQuery = None,
) -> RequestOptions:
    """The query parameters of both endpoints, resolved: unknown names are refused before any upload is read."""
    service: Service = request.app.state.service
    return service.options(detector, model, fallback, min_face_size)


# Module level, so that FastAPI can resolve the annotation of the endpoints' parameter.
Options = Annotated[RequestOptions, Depends(_request_options)]


def analysis_routes(service: Service) -> APIRouter:
    """The two analysis endpoints of ``service``."""
    router = APIRouter(tags=["analysis"], responses=_ERRORS)

    @router.post(
        "/v1/analyze", summary="Analyse one image", response_model=AnalysisResultModel, openapi_extra=_IMAGE_BODY
    )
    async def analyze(request: Request, options: Options) -> JSONResponse:
        entries = await _analyse_request(service, request, options, many=False)
        if entries[0]["error"] is not None:  # one image: its error is the request's
            raise entries[0]["error"]
        return JSONResponse(entries[0]["result"])

    @router.post(
        "/v1/analyze/batch",
        summary="Analyse several images; a file that fails is an error entry, not a failed request",
        response_model=BatchResponseModel,
        openapi_extra=_BATCH_BODY,
    )
    async def analyze_batch(request: Request, options: Options) -> JSONResponse:
        entries = await _analyse_request(service, request, options, many=True)
        for entry in entries:
            if isinstance(entry["error"], RequestError):
                entry["error"] = {"type": entry["error"].kind, "message": entry["error"].message}
        return JSONResponse({"results": entries})

    return router


async def _analyse_request(
    service: Service, request: Request, options: RequestOptions, *, many: bool
) -> list[dict[str, Any]]:
    """One entry per uploaded image (``filename``, ``result``, ``error``), analysed under an in-flight slot."""
    config = service.config
    lease = service.take_slot()
    try:
        files = await uploads(request, config, field="files" if many else "file", many=many)
        if len(files) > config.max_files:
            raise RequestError(413, "TooManyFiles", f"send at most {config.max_files} files per request")

        def work() -> list[dict[str, Any]]:
            analyzer = service.analyzer(options.detector, options.model)
            entries = _analyze_each(analyzer, service.batcher(analyzer), files, config, options)
            results = [entry["result"] for entry in entries if entry["result"] is not None]
            service.metrics.analysed(len(results), sum(len(result["faces"]) for result in results))
            return entries

        return await service.run(work, lease)
    finally:
        if not lease.in_pool:
            lease.give_back()


def _analyze_each(
    analyzer: Analyzer, batcher: FaceBatcher, files: Sequence[Upload], config: ServeConfig, options: RequestOptions
) -> list[dict[str, Any]]:
    """One entry per upload, in order: each image is decoded and its faces found, then every face is classified
    in one forward pass (shared with concurrent requests by ``batcher``); an image that fails is an error entry."""
    entries: list[dict[str, Any]] = [{"filename": u.filename, "result": None, "error": None} for u in files]
    found: list[tuple[int, Detected]] = []
    with batcher.detecting() as slot:
        for index, upload in enumerate(files):
            try:
                image = load_upload(upload, config)
                found.append(
                    (index, analyzer.detect(image, fallback=options.fallback, min_face_size=options.min_face_size))
                )
            except RequestError as exc:
                entries[index]["error"] = exc
            except EmolensError as exc:
                entries[index]["error"] = RequestError.from_emolens(exc, max_pixels=config.max_pixels)
        try:
            results = batcher.classify(analyzer, [detected for _, detected in found], slot=slot)
        except EmolensError:  # one image broke the forward pass: classify them one by one to find which
            results = []
            for index, detected in found:
                try:
                    results += analyzer.classify([detected])
                except EmolensError as exc:
                    entries[index]["error"] = RequestError.from_emolens(exc, max_pixels=config.max_pixels)
            found = [(index, detected) for index, detected in found if entries[index]["error"] is None]
    for (index, _), result in zip(found, results, strict=True):
        entries[index]["result"] = result.to_dict()
    return entries
