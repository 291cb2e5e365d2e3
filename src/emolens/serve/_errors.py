"""How emolens errors become HTTP answers: one table, one JSON shape, never a traceback."""

from __future__ import annotations

import logging

from .._limits import RAISE_MAX_PIXELS
from ..errors import (
    DatasetError,
    EmolensError,
    ImageTooLargeError,
    InternalError,
    InvalidImageError,
    InvalidOptionError,
    InvalidVideoError,
    MissingDependencyError,
    UnknownNameError,
    WeightsError,
)

__all__ = ["STATUS_FOR_ERROR", "RequestError", "error_body", "status_for"]

log = logging.getLogger("emolens.serve")

#: First match wins (subclasses before their bases). Problems with the request are 4xx; a missing optional
#: package 501; weights the server cannot provide 503; a failure that is not the request's fault (a broken
#: model, a crashed detector, an unclassified error from a plug-in) 500.
STATUS_FOR_ERROR: tuple[tuple[type[EmolensError], int], ...] = (
    (ImageTooLargeError, 413),
    (InvalidImageError, 400),
    (UnknownNameError, 404),
    (InvalidOptionError, 400),
    (InvalidVideoError, 400),
    (DatasetError, 400),
    (MissingDependencyError, 501),
    (WeightsError, 503),
    (InternalError, 500),
    (EmolensError, 500),
)


class RequestError(Exception):
    """An HTTP error the server answers on purpose: a status, an error type and a message for the client."""

    def __init__(self, status: int, kind: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def from_emolens(cls, exc: EmolensError, *, max_pixels: int | None = None) -> RequestError:
        """The answer for an emolens error; its advice is rewritten where the fix is a server setting.

        A weights problem is the operator's: its message (cache paths, download advice) goes to the
        server log, and the client reads what it can do.
        """
        message = str(exc)
        if isinstance(exc, InternalError) or type(exc) is EmolensError:
            log.error("emolens serve: %s: %s", type(exc).__name__, message)
        if isinstance(exc, WeightsError):
            log.warning("emolens serve: weights unavailable: %s", message)
            message = (
                f"the weights this request needs ({exc.filename}) are not available on this server right now; "
                "choose another model or detector (GET /v1/models says which are available), or retry later"
            )
        elif isinstance(exc, ImageTooLargeError) and max_pixels is not None:
            message = message.replace(
                RAISE_MAX_PIXELS,
                f"this server's limit is {max_pixels / 1e6:g} megapixels (emolens serve --max-megapixels)",
            )
        return cls(status_for(exc), type(exc).__name__, message)


def status_for(exc: EmolensError) -> int:
    """The HTTP status for an emolens error."""
    return next(status for kind, status in STATUS_FOR_ERROR if isinstance(exc, kind))


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error answer: ``{"error": {"type": ..., "message": ...}}``."""
    return {"error": {"type": kind, "message": message}}
