"""Start the server: one process, or several uvicorn workers that each build the app from the environment.

SIGTERM drains (see :func:`~._service.drain_on_sigterm`): the listening socket closes, requests in
flight finish (at most the request and read time-outs), anything that still arrives gets 503, then
the process exits with status 0. Ctrl-C does the same and exits with 130, as the CLI does.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from types import FrameType
from typing import Any

from .._optional import require
from ..errors import InvalidOptionError
from ._config import API_KEY_ENV, CONFIG_ENV, ServeConfig
from ._metrics import MULTIPROC_ENV

__all__ = ["serve"]


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM or Ctrl-C. Raises MissingDependencyError without ``emolens[serve]``.

    Refuses (:class:`InvalidOptionError`) to listen on a non-loopback address without an API key,
    unless ``config.no_auth`` says that is intended, and an address it cannot listen on (a port in use).
    """
    uvicorn = require("uvicorn", extra="serve", feature="emolens serve")
    require("fastapi", extra="serve", feature="emolens serve")
    require("python_multipart", extra="serve", feature="emolens serve", package="python-multipart")
    require("prometheus_client", extra="serve", feature="emolens serve", package="prometheus-client")
    require("fastapi_swagger", extra="serve", feature="emolens serve", package="fastapi-swagger")
    config.check_names()
    if not config.loopback and config.api_key is None and not config.no_auth:
        raise InvalidOptionError(
            f"refusing to serve {config.host} without an API key: anyone who can reach the port could use it. "
            "Set EMOLENS_API_KEY (or --api-key-file), or pass --no-auth if that is what you want",
            option="api_key",
        )
    _check_address(config.host, config.port)
    from ._middleware import configure_access_log

    configure_access_log()
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": "info",
        "timeout_keep_alive": 5,
        "access_log": False,  # emolens writes its own, as JSON with request ids
        "timeout_graceful_shutdown": math.ceil(config.request_timeout_s + config.read_timeout_s),
        "http": "emolens.serve._protocol:HeaderDeadlineProtocol",  # request heads within --read-timeout too
    }
    _raise_open_file_limit()
    from ._protocol import set_header_timeout

    set_header_timeout(config.read_timeout_s)
    # uvicorn re-raises the signal it caught once it has shut down; exiting 0 then says "stopped as asked".
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        if config.workers == 1:
            from ._app import create_app

            uvicorn.run(create_app(config), **options)
        else:
            _serve_workers(uvicorn, config, options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_open_file_limit() -> None:
    """Allow as many open connections as the system lets this process have (the soft limit is often 1,024)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65_536
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 1 << 20), hard))
    except (ImportError, OSError, ValueError):  # not POSIX, or not allowed: the limit stays
        pass


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def _check_address(host: str, port: int) -> None:
    """InvalidOptionError, in one line, for an address this machine cannot listen on (a port in use, a host that
    is not this machine's): uvicorn would say it in its own log format, after starting up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidOptionError(
            f"cannot listen on host {host!r} ({exc}); pass --host 127.0.0.1", option="host"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            advice = {
                errno.EADDRINUSE: "stop what uses that port, or pass another --port",
                errno.EACCES: "pass a --port above 1023, or run with the right to use it",
            }.get(exc.errno or 0, "pass a --host of this machine (127.0.0.1, or 0.0.0.0 for every address)")
            raise InvalidOptionError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): {advice}", option="port"
            ) from None


def _serve_workers(uvicorn: Any, config: ServeConfig, options: dict[str, Any]) -> None:
    """Each worker imports the app by name, so the configuration travels in the environment."""
    os.environ[CONFIG_ENV] = config.to_json()  # without the key: that goes in its own variable, as documented
    if config.api_key is not None:
        os.environ[API_KEY_ENV] = config.api_key
    shared = None
    if not os.environ.get(MULTIPROC_ENV):  # the workers' metrics meet here, so that a scrape sees all of them
        shared = tempfile.mkdtemp(prefix="emolens-metrics-")
        os.environ[MULTIPROC_ENV] = shared
    try:
        uvicorn.run("emolens.serve._app:app_from_env", factory=True, workers=config.workers, **options)
    finally:
        os.environ.pop(CONFIG_ENV, None)
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
