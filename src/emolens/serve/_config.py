"""``ServeConfig``: every setting of ``emolens serve``, with its safe default written once."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from .._limits import DEFAULT_MAX_PIXELS, DEFAULT_MIN_FACE_SIZE
from ..errors import InvalidOptionError

__all__ = ["CONFIG_ENV", "ServeConfig"]

#: Environment variable that carries the configuration to uvicorn's worker processes (JSON).
CONFIG_ENV = "EMOLENS_SERVE_CONFIG"


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
        request_timeout_s: longest analysis before the client gets 503 (the work is not interrupted,
            so its slot stays taken until it ends: the in-flight limit stays true).
        read_timeout_s: longest time to receive a request body (408 beyond it: slow clients).
        workers: uvicorn worker processes, each with its own models.
        warmup: run each default pipeline once at start-up, before ``/readyz`` says ready.
        min_face_size: default for requests that give none.
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
    request_timeout_s: float = 30.0
    read_timeout_s: float = 10.0
    workers: int = 1
    warmup: bool = True
    min_face_size: int = DEFAULT_MIN_FACE_SIZE

    def __post_init__(self) -> None:
        positive = ("port", "max_upload_bytes", "max_pixels", "max_files", "max_in_flight", "threads", "workers")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}", option=name)
        for name in ("request_timeout_s", "read_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise InvalidOptionError(f"{name} must be a positive number of seconds, got {value!r}", option=name)
        if self.port > 65535:
            raise InvalidOptionError(f"port must be at most 65535, got {self.port}", option="port")
        if self.models is not None:
            object.__setattr__(self, "models", tuple(self.models))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        return cls(**kwargs)

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The configuration a parent ``emolens serve`` left for its worker processes (defaults when none)."""
        text = os.environ.get(CONFIG_ENV)
        return cls.from_json(text) if text else cls()
