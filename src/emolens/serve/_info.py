"""Routes that describe the server: health, readiness, models and detectors, the result schema, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..detectors import DETECTORS
from ..labels import CANONICAL, COLORS, display_label
from ._errors import error_body
from ._schema import ErrorResponseModel, ModelsResponseModel, analysis_result_json_schema
from ._service import Service

__all__ = ["info_routes"]


def info_routes(service: Service) -> APIRouter:
    """``/healthz``, ``/readyz``, ``/v1/models``, ``/v1/schema`` and ``/metrics`` for ``service``."""
    router = APIRouter()
    config = service.config

    # HEAD too: load balancers and `curl -I` probe with it (the body is dropped, the status kept). Left out of the
    # schema, where it would repeat GET's operationId.
    @router.head("/healthz", include_in_schema=False)
    @router.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.head("/readyz", include_in_schema=False)
    @router.get(
        "/readyz",
        tags=["health"],
        summary="The default model is loaded and warmed up",
        responses={503: {"model": ErrorResponseModel, "description": "Still loading, loading failed, or draining"}},
    )
    async def readyz() -> JSONResponse:
        if service.ready.is_set():
            return JSONResponse({"status": "ready", "model": config.model, "detector": config.detector})
        if service.startup_error is not None:
            return JSONResponse(error_body("NotReady", service.startup_error), status_code=503)
        return JSONResponse(
            error_body("NotReady", "loading the default model"), status_code=503, headers={"Retry-After": "1"}
        )

    @router.get("/v1/models", tags=["analysis"], summary="Models and detectors a request may name")
    async def models() -> ModelsResponseModel:
        return ModelsResponseModel.model_validate(_models(service))

    @router.get("/v1/schema", tags=["analysis"], summary="JSON Schema of one analysis result")
    async def schema() -> dict[str, Any]:
        return analysis_result_json_schema()

    @router.get("/metrics", tags=["health"], summary="Prometheus metrics (text format)")
    async def metrics() -> Response:
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    return router


def _models(service: Service) -> dict[str, Any]:
    """The body of ``/v1/models``: what a request may name, and whether this server has it."""
    config = service.config
    known = service.model_specs()
    loaded = service.loaded()
    infos = []
    for name in service.model_names():
        spec = known.get(name)
        infos.append(
            {
                "name": name,
                "description": spec.description if spec else "given by the server's operator",
                "labels": list(spec.labels) if spec else [],
                "label_set": spec.label_set.name if spec else "",
                "valence_arousal": spec.valence_arousal if spec else False,
                "runtime": spec.runtime if spec else "torch",
                "version": spec.version if spec else "",
                "identity": loaded.get(name) or (spec.identity if spec else ""),
                # the operator's own model (a card path) was checked when the server started
                "available": service.available(spec) if spec else service.ready.is_set(),
                "loaded": name in loaded,
            }
        )
    detectors = [
        {"name": spec.name, "description": spec.description, "available": service.available(spec)}
        for spec in DETECTORS.specs()
    ]
    return {
        "default_model": config.model,
        "default_detector": config.detector,
        "label_colors": COLORS,
        "display_names": {label: display_label(label) for label in CANONICAL},
        "models": infos,
        "detectors": detectors,
    }
