"""Reading a request's images: the body within its size and time limits, multipart fields, decoding.

Everything here refuses early and says why: 413 past the upload limit, 408 for a body that arrives
too slowly, 415 for what is not an image, 422 for a file sent under the wrong field name.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from .._header import FORMATS, signature
from .._image import load_image
from ..errors import EmolensError
from ._config import ServeConfig
from ._errors import RequestError

__all__ = ["Upload", "load_upload", "read_body", "too_large", "uploads"]


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file: its name as the client gave it (``None`` for a raw body) and its bytes."""

    filename: str | None
    data: bytes


async def read_body(request: Request, config: ServeConfig) -> bytes:
    """The whole body, refused early when it is too large (413) or arrives too slowly (408)."""
    limit = config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "InvalidRequest", f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, "UploadTooLarge", too_large(int(declared), limit))
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
        except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on
            raise RequestError(
                408, "RequestTimeout", f"the request body did not arrive within {config.read_timeout_s:g} s"
            ) from None
        except ClientDisconnect:
            raise RequestError(400, "ClientDisconnect", "the client closed the connection mid-request") from None
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "UploadTooLarge", too_large(size, limit, at_least=True))
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    more = "at least " if at_least else ""
    return (
        f"the upload is {more}{size:,} bytes; this server accepts at most {limit:,}: send a smaller image "
        "(the server's operator sets the limit with emolens serve --max-upload-mb)"
    )


async def uploads(request: Request, config: ServeConfig, *, field: str, many: bool) -> list[Upload]:
    """The images of a request: multipart files (under ``field``, or any file field), or the raw body."""
    body = await read_body(request, config)
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
        return [Upload(None, body)]

    if not _closes(body, content_type):
        raise RequestError(
            400,
            "InvalidRequest",
            "malformed multipart form: the body ends before the form's closing boundary (was the upload cut off?); "
            "send the whole form",
        )

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
        return [Upload(upload.filename, await upload.read()) for upload in files]
    finally:
        await form.close()


def _closes(body: bytes, content_type: str) -> bool:
    """Whether a multipart body holds its closing delimiter (``--boundary--``): a body cut short parses as a form
    without the cut part, which would be answered as "no file" instead of as the broken upload it is."""
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.strip().partition("=")
        if key.strip().lower() == "boundary" and value.strip().strip('"'):
            return b"--" + value.strip().strip('"').encode("latin-1", "replace") + b"--" in body
    return True  # no boundary: the parser's own error says so


def load_upload(upload: Upload, config: ServeConfig) -> Any:
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
