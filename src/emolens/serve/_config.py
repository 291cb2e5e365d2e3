"""``ServeConfig``: every setting of ``emolens serve``, with its safe default written once."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE
from ..errors import InvalidOptionError

__all__ = ["API_KEY_ENV", "CONFIG_ENV", "MAX_URL_BYTES", "ServeConfig", "detector_choice"]

#: Environment variable that carries the configuration to uvicorn's worker processes (JSON).
CONFIG_ENV = "EMOLENS_SERVE_CONFIG"
#: Longest URL (path and query) a request may have: names and options are short, a long URL is a mistake or a probe.
MAX_URL_BYTES = 8192
#: Environment variable with the API key (safer than ``--api-key``, which other users can read in ``ps``).
API_KEY_ENV = "EMOLENS_API_KEY"
_KEY = re.compile(r"[!-~]{16,256}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


#: The longest request or read timeout a server takes (a day).
_MAX_TIMEOUT_S = 86_400.0


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Settings of the REST server and web app.

    Attributes:
        host, port: where to listen. Loopback by default: exposing the server is a decision.
        detector, model: used when a request names none. ``model`` may be a registered name or a card
            path given by whoever starts the server; clients may only pick registered names.
        models: the model names clients may request (``None``: every registered model).
        max_upload_bytes: largest request body (413 beyond it).
        max_pixels: largest decoded image (413 beyond it, read from the header before decoding).
        max_files: most files in one ``/v1/analyze/batch`` request.
        max_in_flight: requests read or analysed at once per process; more get 503 with ``Retry-After``.
        threads: inference threads per process (the pool that runs analyses off the event loop).
        precision: how the server runs emolens' models (see :func:`emolens.load_model`): ``"int8"`` and
            ``"fastest"`` apply to the models that have an int8 graph, the others run at ``"auto"``; every
            result's ``model_id`` says which weights answered.
        batch_window_ms: micro-batching: how long a request whose faces are found waits for requests still
            detecting, so that their faces share one forward pass (0: each request classified alone). A
            request alone never waits.
        request_timeout_s: longest analysis before the client gets 503 (the work is not interrupted,
            so its slot stays taken until it ends: the in-flight limit stays true).
        read_timeout_s: longest time to receive a request's headers (the connection is closed beyond it) and
            its body (408 beyond it): slow clients.
        workers: uvicorn worker processes, each with its own models.
        warmup: run each default pipeline once at start-up, before ``/readyz`` says ready.
        min_face_size: default for requests that give none.
        api_key: the shared secret clients send as ``Authorization: Bearer <key>`` (``None``: no key asked):
            16 to 256 printable ASCII characters without spaces.
        no_auth: serve a non-loopback address without a key, on purpose (``serve()`` refuses otherwise).
        cors_origins: browser origins on other sites allowed to call the API (none by default).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    detector: str = "auto"
    model: str = "default"
    models: tuple[str, ...] | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_files: int = 32
    max_in_flight: int = 8
    threads: int = 1
    precision: str = "auto"
    batch_window_ms: float = 0.0
    request_timeout_s: float = 30.0
    read_timeout_s: float = 10.0
    workers: int = 1
    warmup: bool = True
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    api_key: str | None = field(default=None, repr=False)
    no_auth: bool = False
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        positive = ("port", "max_upload_bytes", "max_pixels", "max_files", "max_in_flight", "threads", "workers")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}", option=name)
        for name in ("request_timeout_s", "read_timeout_s"):  # finite: inf and nan broke the server's start
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= _MAX_TIMEOUT_S:
                raise InvalidOptionError(
                    f"{name} must be a number of seconds above 0 and at most {_MAX_TIMEOUT_S:g}, got {value!r}",
                    option=name,
                )
        from ..models import check_precision

        check_precision(self.precision)
        window = self.batch_window_ms
        if not isinstance(window, (int, float)) or isinstance(window, bool) or not 0 <= window <= 1000:
            raise InvalidOptionError(
                f"batch_window_ms must be a number of milliseconds from 0 to 1000, got {window!r}",
                option="batch_window_ms",
            )
        if self.port > 65535:
            raise InvalidOptionError(f"port must be at most 65535, got {self.port}", option="port")
        if self.models is not None:
            object.__setattr__(self, "models", tuple(self.models))
        if self.api_key is not None and (not isinstance(self.api_key, str) or not _KEY.fullmatch(self.api_key)):
            raise InvalidOptionError(
                "the API key must be 16 to 256 printable ASCII characters without spaces "
                "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
                option="api_key",
            )
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):  # no "*": every origin is allowed by name
                raise InvalidOptionError(
                    f"a CORS origin is a scheme and host such as 'https://app.example.com', got {origin!r:.80}",
                    option="cors_origins",
                )

    def check_names(self) -> None:
        """UnknownNameError for a model or detector nobody registered, before the server starts (a typo would
        otherwise leave a server that is never ready, or advertise a model it cannot load)."""
        from ..errors import UnknownNameError
        from ..models import MODELS, model_spec, pinned_spec

        model_spec(self.model)  # a name, a pinned version or a card
        for name in self.models or ():  # names only, as clients choose them
            if name not in MODELS.names():
                try:
                    pinned_spec(name)
                except UnknownNameError:
                    raise UnknownNameError("model", name, list(MODELS.names())) from None
        detector_choice(self.detector)

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the server (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    def to_json(self) -> str:
        """The settings for worker processes, without the API key (it travels as ``EMOLENS_API_KEY``)."""
        return json.dumps({**asdict(self), "api_key": None})

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for name in ("models", "cors_origins"):  # JSON has lists
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The configuration a parent ``emolens serve`` left for its worker processes (defaults when none)."""
        text = os.environ.get(CONFIG_ENV)
        config = cls.from_json(text) if text else cls()
        key = os.environ.get(API_KEY_ENV)
        return replace(config, api_key=key) if key else config


def detector_choice(name: str) -> str | None:
    """The detector a server runs for ``name`` (``None``: no detection, for ``"none"`` in any case);
    UnknownNameError for a name not registered. Checked at start for ``--detector`` and per request."""
    from ..detectors import DETECTORS
    from ..errors import UnknownNameError

    if name.lower() == "none":
        return None
    known = ["auto", *DETECTORS.names()]
    if name not in known:
        raise UnknownNameError("detector", name, [*known, "none"])
    return name
