"""``emolens serve``: the REST API and web app."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .._argtypes import non_negative, positive_int, positive_number
from .._files import check_regular_file
from ..models import PRECISIONS
from ..serve import API_KEY_ENV, ServeConfig
from ._common import (
    MODEL_HELP,
    max_pixels,
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
        "--precision",
        choices=PRECISIONS,
        default=_SERVE.precision,
        help="how emolens' models run: auto (bf16 where native), float32, int8 (the models with an int8 graph; "
        "the others run at auto), fastest (measured once per host); results' model_id says which weights answered",
    )
    p.add_argument(
        "--batch-window-ms",
        type=non_negative,
        default=_SERVE.batch_window_ms,
        help="micro-batching: how long a request waits for others still detecting, so that their faces share "
        f"one forward pass (0: off; default {_SERVE.batch_window_ms:g})",
    )
    p.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=_SERVE.max_in_flight,
        help=f"requests per process at once; more get 503 + Retry-After (default {_SERVE.max_in_flight})",
    )
    p.add_argument(
        "--max-upload-mb",
        type=positive_number,
        default=_SERVE.max_upload_bytes / 2**20,
        help=f"largest request body in MiB (default {_SERVE.max_upload_bytes / 2**20:g})",
    )
    p.add_argument(
        "--max-megapixels",
        type=positive_number,
        default=_SERVE.max_pixels / 1e6,
        help=f"largest decoded image (default {_SERVE.max_pixels / 1e6:g})",
    )
    p.add_argument("--max-files", type=positive_int, default=_SERVE.max_files, help="most files per batch request")
    p.add_argument(
        "--request-timeout",
        type=positive_number,
        default=_SERVE.request_timeout_s,
        help=f"seconds before a slow analysis is answered with 503 (default {_SERVE.request_timeout_s:g})",
    )
    p.add_argument(
        "--read-timeout",
        type=positive_number,
        default=_SERVE.read_timeout_s,
        help=f"seconds to receive a request's headers (else the connection is closed) and its body (else 408; "
        f"default {_SERVE.read_timeout_s:g})",
    )
    p.add_argument("--no-warmup", action="store_true", help="be ready without a warm-up run")
    auth = p.add_argument_group("exposing the server (see docs/serve.md, 'Running it for others')")
    auth.add_argument(
        "--api-key-file",
        metavar="PATH",
        help=f"file holding the API key clients must send as 'Authorization: Bearer KEY' (or set {API_KEY_ENV})",
    )
    auth.add_argument(
        "--api-key", help=f"the API key itself (visible to other users in `ps`: prefer {API_KEY_ENV} or the file)"
    )
    auth.add_argument(
        "--no-auth", action="store_true", help="serve a non-loopback --host without an API key, on purpose"
    )
    auth.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages of this origin (e.g. https://app.example.com) to call the API; repeatable",
    )
    p.set_defaults(func=run)


def _api_key(args: argparse.Namespace) -> str | None:
    """The key from --api-key, --api-key-file or the environment (one of them at most)."""
    from ..errors import InvalidOptionError

    given = [
        (name, value)
        for name, value in (
            ("--api-key", args.api_key),
            ("--api-key-file", args.api_key_file),
            (API_KEY_ENV, os.environ.get(API_KEY_ENV) or None),
        )
        if value
    ]
    if len(given) > 1:
        names = " and ".join(name for name, _ in given)
        raise InvalidOptionError(f"the API key is given twice ({names}); give it once", option="api_key")
    if not given:
        return None
    name, value = given[0]
    if name != "--api-key-file":
        return str(value).strip()

    def refused(message: str) -> InvalidOptionError:
        return InvalidOptionError(message, option="api_key")

    if check_regular_file(value, refused, "API key file") > 4096:
        raise refused(f"the API key file {value} is over 4 KiB: it should hold only the key")
    try:
        return Path(value).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise refused(f"cannot read the API key file {value}: {exc}") from None


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
        batch_window_ms=args.batch_window_ms,
        precision=args.precision,
        max_in_flight=args.max_in_flight,
        max_upload_bytes=max(1, int(args.max_upload_mb * 2**20)),
        max_pixels=max_pixels(args),
        max_files=args.max_files,
        request_timeout_s=args.request_timeout,
        read_timeout_s=args.read_timeout,
        warmup=not args.no_warmup,
        api_key=_api_key(args),
        no_auth=args.no_auth,
        cors_origins=tuple(args.cors_origin),
    )
    serve(config)
    return 0
