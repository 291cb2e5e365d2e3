"""uvicorn's HTTP/1.1 protocol with a deadline on request headers.

uvicorn times a request's body (emolens answers 408 past ``--read-timeout``) and an idle kept-alive
connection, but not the headers: a client that sends one header line every few seconds holds its
connection, and a thousand such clients held every file descriptor of the server ("slowloris"). Here a
connection that has not sent a whole request head within the deadline, after it opened or after its last
response, is closed.

It reads uvicorn's own ``cycle`` (the request in progress) and ``on_response_complete``, and it is the h11
protocol, so uvicorn's faster httptools parser (``uvicorn[standard]``) is not used: emolens' ``serve`` extra
installs plain uvicorn, and the analyses, not the parsing, take the time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderDeadlineProtocol", "set_header_timeout"]

_header_timeout_s = 10.0  # set by `emolens serve` in its process, and in each worker from the configuration


def set_header_timeout(seconds: float) -> None:
    """The deadline for every connection opened from now on, in this process; also quiets asyncio's log of
    refused connections (see :class:`_AcceptErrors`)."""
    global _header_timeout_s
    _header_timeout_s = float(seconds)
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _AcceptErrors) for f in asyncio_log.filters):
        asyncio_log.addFilter(_AcceptErrors())


class _AcceptErrors(logging.Filter):
    """asyncio logs a traceback for every connection it cannot accept when the process is out of file
    descriptors: 590,000 of them (239 MB) in 45 s under a connection flood. One line per 10 s instead."""

    _EVERY_S = 10.0

    def __init__(self) -> None:
        super().__init__()
        self._last = -self._EVERY_S
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        now = time.monotonic()
        if now - self._last < self._EVERY_S:
            self._dropped += 1
            return False
        error = record.exc_info[1] if record.exc_info else None
        record.msg = (
            f"cannot accept connections: {getattr(error, 'strerror', None) or error or 'out of resources'} "
            f"({self._dropped:,} more times since the last such line); clients wait until connections close. "
            "Raise the open-file limit (ulimit -n) if this is ordinary load"
        )
        record.args, record.exc_info, record.exc_text = (), None, None
        self._last, self._dropped = now, 0
        return True


class HeaderDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` closing connections whose request head is late (see the module)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(_header_timeout_s, self._late, getattr(self, "cycle", None))

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self, waiting_after: Any) -> None:
        """Close the connection if no request head arrived since the deadline was set (the request in progress,
        if any, was the one before it, and its response is complete)."""
        self._deadline = None
        idle = waiting_after is None or getattr(waiting_after, "response_complete", True)
        if getattr(self, "cycle", None) is waiting_after and idle and not self.transport.is_closing():
            self.transport.close()
