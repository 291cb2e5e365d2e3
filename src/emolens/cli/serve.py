"""``emolens serve``: the REST API and web app."""

from __future__ import annotations

import argparse
from typing import Any

from .._argtypes import positive_int
from ..serve._config import ServeConfig
from ._common import (
    MODEL_HELP,
)

_SERVE = ServeConfig()  # the server's defaults, shown in --help


def register(sub: Any) -> None:
    """Add ``emolens serve`` to the subcommands."""
    p = sub.add_parser(
        "serve",
        help="serve the REST API and the web app (needs emolens[serve])",
        description="Answer POST /v1/analyze and /v1/analyze/batch, GET /v1/models, /healthz and /readyz, "
        "with the web app at / and the OpenAPI docs at /docs. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument(
        "--host", default=_SERVE.host, help=f"address to listen on (default {_SERVE.host}: this machine only)"
    )
    p.add_argument("--port", type=positive_int, default=_SERVE.port, help=f"default {_SERVE.port}")
    p.add_argument("--detector", default=_SERVE.detector, help="detector for requests that name none")
    p.add_argument("--model", default=_SERVE.model, help="model for requests that name none; " + MODEL_HELP)
    p.add_argument(
        "--models",
        type=lambda text: tuple(name for name in text.split(",") if name),
        metavar="NAME,...",
        help="the registered models clients may choose (default: all)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=_SERVE.workers, help="worker processes, each with its models"
    )
    p.add_argument("--threads", type=positive_int, default=_SERVE.threads, help="analysis threads per process")
    p.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=_SERVE.max_in_flight,
        help=f"requests per process at once; more get 503 + Retry-After (default {_SERVE.max_in_flight})",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=_SERVE.max_upload_bytes / 2**20,
        help=f"largest request body in MiB (default {_SERVE.max_upload_bytes / 2**20:g})",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=_SERVE.max_pixels / 1e6,
        help=f"largest decoded image (default {_SERVE.max_pixels / 1e6:g})",
    )
    p.add_argument("--max-files", type=positive_int, default=_SERVE.max_files, help="most files per batch request")
    p.add_argument(
        "--request-timeout",
        type=float,
        default=_SERVE.request_timeout_s,
        help=f"seconds before a slow analysis is answered with 503 (default {_SERVE.request_timeout_s:g})",
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=_SERVE.read_timeout_s,
        help=f"seconds to receive a request body before answering 408 (default {_SERVE.read_timeout_s:g})",
    )
    p.add_argument("--no-warmup", action="store_true", help="be ready without a warm-up run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve import serve

    config = ServeConfig(
        host=args.host,
        port=args.port,
        detector=args.detector,
        model=args.model,
        models=args.models,
        workers=args.workers,
        threads=args.threads,
        max_in_flight=args.max_in_flight,
        max_upload_bytes=max(1, int(args.max_upload_mb * 2**20)),
        max_pixels=max(1, int(args.max_megapixels * 1e6)),
        max_files=args.max_files,
        request_timeout_s=args.request_timeout,
        read_timeout_s=args.read_timeout,
        warmup=not args.no_warmup,
    )
    serve(config)
    return 0
