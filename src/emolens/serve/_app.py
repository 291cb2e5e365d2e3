"""The FastAPI application: routes by concern, error answers, middleware, and the web app's static files.

The event loop only reads requests and writes answers; decoding, detection and classification run
in a bounded thread pool. A process takes at most ``max_in_flight`` requests at once (reading or
analysing) and answers the next one at once with 503 and ``Retry-After``, so memory and latency
stay bounded under overload instead of a queue growing without limit.

Routes: :mod:`._analysis` (analyse one image or a batch), :mod:`._info` (health, models, schema,
metrics); requests are read by :mod:`._uploads`; :mod:`._middleware` adds request ids, the API key,
draining, metrics and the access log; :mod:`._service` holds the process's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import EmolensError
from ._analysis import analysis_routes
from ._config import ServeConfig
from ._errors import RequestError, error_body
from ._info import info_routes
from ._middleware import ServerMiddleware, configure_access_log
from ._service import Service, drain_on_sigterm

__all__ = ["app_from_env", "create_app"]


_STATIC = resources.files("emolens.serve") / "static"
_SWAGGER = "/static/swagger"
# Swagger UI (v5, which reads OpenAPI 3.1) from the fastapi-swagger package: the API docs work without a network.
_SWAGGER_FILES = resources.files("fastapi_swagger") / "resources"
_DESCRIPTION = (
    "Each result is `AnalysisResult.to_dict()`, the same JSON as `emolens analyze --json`. "
    'Errors are `{"error": {"type": ..., "message": ...}}`; 503 answers carry `Retry-After`. '
    "A server started with an API key wants `Authorization: Bearer <key>` on every request but the "
    "health checks, the web app's page and files, and these docs; every answer carries `X-Request-ID` "
    "(the client's, when it sends one)."
)


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The server for ``config``: ``uvicorn.run(create_app(...))`` or ``emolens serve``."""
    config = config or ServeConfig()
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(service.pool, service.start_up)  # /healthz answers while this loads
        with drain_on_sigterm(service):
            yield
        service.pool.shutdown(wait=False, cancel_futures=True)
        service.metrics.process_ended()

    app = FastAPI(
        title="emolens",
        version=__version__,
        summary="Find every face in an image and classify its emotion.",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI from a CDN; /docs below serves the installed copy
        redoc_url=None,
    )
    app.state.service = service
    _add_error_handlers(app)
    app.include_router(info_routes(service))
    app.include_router(analysis_routes(service))

    @app.get("/", include_in_schema=False)
    async def web_app() -> FileResponse:
        return FileResponse(str(_STATIC / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="emolens REST API",
            swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.mount(_SWAGGER, StaticFiles(directory=str(_SWAGGER_FILES)), name="swagger")
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
    app.add_middleware(ServerMiddleware, service=service)
    if config.cors_origins:  # outermost, so that preflights and refusals carry the CORS headers too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error becomes the one JSON shape; nothing else (a traceback) ever reaches a client.

    An unexpected exception (a bug) is answered by :class:`ServerMiddleware`, with the request id.
    """

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


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker process started by ``emolens serve --workers N`` (config from the environment)."""
    from ._protocol import set_header_timeout

    configure_access_log()
    config = ServeConfig.from_env()
    set_header_timeout(config.read_timeout_s)
    return create_app(config)
