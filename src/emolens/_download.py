"""Bounded HTTP(S) downloads for the weights store: every phase has a deadline, and every failure names its phase.

A socket read timeout applies to each read, so a server that sends its headers one byte every few seconds never
trips one. Here the request is made with :mod:`http.client` on a socket we open ourselves, and a watchdog thread
shuts that socket down when the deadline of the current phase (or the total one) passes, so a blocked read returns
at once. The phases: name lookup + TCP connect + proxy tunnel + TLS handshake (``connect_s``), status line and
headers (``headers_s``), the first body byte (``first_byte_s``), then the body (``read_s`` of silence at most, an
average of ``min_rate`` after ``grace_s``, ``max_bytes``), all within ``total_s``, redirects included.

Proxies come from the usual environment variables (``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy``,
via :func:`urllib.request.getproxies`); HTTPS goes through an HTTP proxy with ``CONNECT``. Certificates are checked
against the system store, plus certifi's bundle when it is installed (requests' store, used before), or against
``REQUESTS_CA_BUNDLE`` alone when that is set.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import importlib
import os
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from .weights import DownloadLimits

__all__ = ["DownloadError", "DownloadTimeout", "HTTPError", "TooManyRedirects", "download"]

_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A download failed; the message names the phase (connect, headers, body ...) and what went wrong."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DownloadTimeout(DownloadError):
    """A phase's deadline, or the total one, passed."""


class HTTPError(DownloadError):
    """The server answered with an HTTP status other than 200 (redirects are followed)."""


class TooManyRedirects(DownloadError):
    """A redirect loop, or a longer chain of redirects than allowed."""


class _Watchdog:
    """Shuts the watched socket down when the armed deadline passes, so a read blocked on it returns at once.

    One phase deadline is armed at a time, capped by the total one; ``expired`` keeps the message of the deadline
    that passed, so that the reader can tell it from a server that closed the connection.
    """

    def __init__(self, total_s: float) -> None:
        self._total_end = time.monotonic() + total_s
        self._total_message = f"not finished within {total_s:g} s in all"
        self._guard = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sock: socket.socket | None = None
        self._end = self._total_end
        self._message = self._total_message  # what the armed deadline means when it passes
        self.timeout_message = self._total_message  # what a socket timeout means in this phase
        self.expired: str | None = None

    def arm(self, seconds: float | None, message: str = "") -> None:
        """Fail with ``message`` after ``seconds`` (None: only the total deadline is left), unless re-armed."""
        self.disarm()
        self.check()
        now = time.monotonic()
        end = self._total_end if seconds is None else min(now + seconds, self._total_end)
        message = message if end < self._total_end else self._total_message
        timer = threading.Timer(max(end - now, 0.0), self._fire)
        timer.daemon = True
        with self._guard:
            self._timer, self._end, self._message = timer, end, message
        self.timeout_message = message
        timer.start()

    def left(self) -> float:
        """Seconds left before the armed deadline (at least 1 ms: a zero socket timeout would mean non-blocking)."""
        return max(self._end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._guard:
            self._sock = sock
            if self.expired is not None:
                self._shutdown()

    def disarm(self) -> None:
        with self._guard:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def expire(self) -> None:
        """The armed deadline has passed (noticed by the caller): raise its DownloadTimeout."""
        with self._guard:
            self.expired = self.expired or self._message
        self.check()

    def check(self) -> None:
        """Raise DownloadTimeout if a deadline passed."""
        if self.expired is not None:
            raise DownloadTimeout(self.expired)

    def failure(self, exc: BaseException, what: str) -> DownloadError:
        """The error to raise for ``exc``: the deadline that passed, a timeout of this phase, or ``what: exc``."""
        if self.expired is not None:
            return DownloadTimeout(self.expired)
        if isinstance(exc, TimeoutError):
            late = time.monotonic() >= self._total_end
            return DownloadTimeout(self._total_message if late else self.timeout_message)
        return DownloadError(f"{what}: {_reason(exc)}")

    def _fire(self) -> None:
        with self._guard:
            if self._timer is not threading.current_thread():  # disarmed or re-armed meanwhile
                return
            self.expired = self._message
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # socket.socket's own: an SSLSocket's would also drop its TLS state
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return f"{type(exc).__name__}: {text}"[:160]


def download(url: str, sink: BinaryIO, limits: DownloadLimits, max_bytes: int) -> None:
    """Write the body of ``url`` to ``sink`` within ``limits``, or raise a DownloadError naming the phase."""
    watchdog = _Watchdog(limits.total_s)
    started = time.monotonic()
    try:
        sock, response = _follow(url, limits, watchdog)
        try:
            _copy_body(response, sock, sink, limits, max_bytes, watchdog, started)
        finally:
            watchdog.watch(None)
            _close(sock, response)
    except http.client.HTTPException as exc:  # every read above maps these already: a safety net
        raise DownloadError(f"bad HTTP answer: {_reason(exc)}") from None
    finally:
        watchdog.disarm()


def _close(sock: socket.socket, response: http.client.HTTPResponse | None = None) -> None:
    """Close the response (its file keeps the socket open) and the socket."""
    if response is not None:
        response.close()
    sock.close()


def _follow(url: str, limits: DownloadLimits, watchdog: _Watchdog) -> tuple[socket.socket, http.client.HTTPResponse]:
    """The socket and response of the first answer that is not a redirect, following at most ``max_redirects``."""
    visited = [url]
    for _ in range(limits.max_redirects + 1):
        sock, response = _request(url, limits, watchdog)
        if response.status not in _REDIRECTS:
            if response.status in (200, 203):
                return sock, response
            _close(sock, response)
            raise HTTPError(f"HTTP {response.status} {response.reason} from {_origin(url)}")
        location = response.getheader("Location")
        _close(sock, response)
        if not location:
            raise HTTPError(f"HTTP {response.status} redirect without a Location header from {_origin(url)}")
        target = urllib.parse.urljoin(url, location.strip()).partition("#")[0]
        if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
            raise TooManyRedirects(f"redirect to a URL that is not http(s): {target[:100]}")
        if target in visited:
            raise TooManyRedirects(f"redirect loop: {url} redirects back to {target}")
        visited.append(target)
        url = target
    raise TooManyRedirects(f"too many redirects (more than {limits.max_redirects}), the last to {url}")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _request(url: str, limits: DownloadLimits, watchdog: _Watchdog) -> tuple[socket.socket, http.client.HTTPResponse]:
    """Connect, send the GET, read the status line and headers, each phase within its deadline."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise DownloadError(f"bad URL {url!r}: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise DownloadError(f"not an http(s) URL: {url!r}")
    authority = parts.netloc.rpartition("@")[2]
    headers = {
        "Host": authority,
        "User-Agent": f"emolens/{_version()}",
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    if parts.username is not None:
        headers["Authorization"] = _basic(parts)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = _proxy_for(scheme, host)
    if proxy is None:
        sock = _connect(host, port, limits, watchdog)
    else:
        sock = _connect(proxy.hostname or "", proxy.port or 80, limits, watchdog)
        if scheme == "https":
            _tunnel(sock, host, port, proxy, watchdog)
        else:  # a plain HTTP proxy takes the absolute URL
            target = urllib.parse.urlunsplit((scheme, authority, parts.path or "/", parts.query, ""))
            if proxy.username is not None:
                headers["Proxy-Authorization"] = _basic(proxy)
    if scheme == "https":
        sock = _handshake(sock, host, watchdog)
    try:
        connection = http.client.HTTPConnection(host, port)  # formats the request, parses the answer: on our socket
        connection.sock = sock
        watchdog.arm(limits.headers_s, f"no response headers within {limits.headers_s:g} s")
        sock.settimeout(watchdog.left())
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        _close(sock)
        raise watchdog.failure(exc, f"no valid response headers from {_origin(url)}") from None
    except BaseException:
        _close(sock)
        raise
    watchdog.disarm()
    return sock, response


def _connect(host: str, port: int, limits: DownloadLimits, watchdog: _Watchdog) -> socket.socket:
    """A TCP connection to ``host:port``; the name lookup runs in a thread so that it is bounded too."""
    watchdog.arm(limits.connect_s, f"no connection to {host}:{port} within {limits.connect_s:g} s")
    found: list[list[tuple[Any, ...]]] = []
    failed: list[OSError] = []

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
            failed.append(exc if isinstance(exc, OSError) else OSError(str(exc)))

    resolver = threading.Thread(target=resolve, name="emolens-resolve", daemon=True)
    resolver.start()
    resolver.join(watchdog.left())
    if resolver.is_alive():
        watchdog.expire()
    if failed or not found:
        raise DownloadError(f"cannot resolve {host}: {_reason(failed[0]) if failed else 'no address'}")
    error: OSError = OSError("no address")
    for family, kind, proto, _, address in found[0]:
        sock = socket.socket(family, kind, proto)
        watchdog.watch(sock)
        sock.settimeout(watchdog.left())
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if watchdog.expired is not None or isinstance(exc, TimeoutError):
                raise watchdog.failure(exc, "") from None
            error = exc
            continue
        return sock
    raise DownloadError(f"cannot connect to {host}:{port}: {_reason(error)}")


def _tunnel(sock: socket.socket, host: str, port: int, proxy: urllib.parse.SplitResult, watchdog: _Watchdog) -> None:
    """Ask the HTTP proxy for a tunnel to ``host:port`` (within the connect deadline)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        lines.append(f"Proxy-Authorization: {_basic(proxy)}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        answer = http.client.HTTPResponse(sock, method="CONNECT")
        try:
            answer.begin()
        finally:
            answer.close()  # its buffered file only: nothing follows the proxy's answer until the TLS handshake
    except (OSError, http.client.HTTPException, ValueError) as exc:
        sock.close()
        raise watchdog.failure(exc, f"proxy {proxy.hostname}:{proxy.port} gave no tunnel to {authority}") from None
    if answer.status != 200:
        sock.close()
        raise DownloadError(
            f"proxy {proxy.hostname}:{proxy.port} refused a tunnel to {authority}: HTTP {answer.status}"
        )


def _handshake(sock: socket.socket, host: str, watchdog: _Watchdog) -> ssl.SSLSocket:
    """TLS over ``sock``, certificate and host name checked (within the connect deadline)."""
    tls: ssl.SSLSocket | None = None
    try:
        tls = _tls_context().wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        watchdog.watch(tls)
        tls.settimeout(watchdog.left())
        tls.do_handshake()
    except OSError as exc:
        (tls or sock).close()
        raise watchdog.failure(exc, f"TLS handshake with {host} failed") from None
    return tls


def _tls_context() -> ssl.SSLContext:
    bundle = os.environ.get("REQUESTS_CA_BUNDLE", "").strip()
    context = ssl.create_default_context(cafile=bundle or None)
    if not bundle:
        with contextlib.suppress(ImportError, OSError, AttributeError):
            context.load_verify_locations(importlib.import_module("certifi").where())
    return context


def _proxy_for(scheme: str, host: str) -> urllib.parse.SplitResult | None:
    """The HTTP proxy to use for ``scheme://host`` from the environment, or None (none set, or ``no_proxy``)."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme.lower() != "http" or not parts.hostname:
        where = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "(unparsable)"
        raise DownloadError(f"unsupported proxy {where} for {scheme} URLs: only http:// proxies are supported")
    return parts


def _basic(parts: urllib.parse.SplitResult) -> str:
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _version() -> str:
    from . import __version__

    return __version__


def _copy_body(
    response: http.client.HTTPResponse,
    sock: socket.socket,
    sink: BinaryIO,
    limits: DownloadLimits,
    max_bytes: int,
    watchdog: _Watchdog,
    started: float,
) -> None:
    """Copy the body to ``sink``: first byte, silences, average rate, total time and size all bounded."""
    declared = response.length  # None when chunked or not announced
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"the server announces {declared:,} bytes, more than {max_bytes:,}")
    watchdog.arm(limits.first_byte_s, f"no body bytes within {limits.first_byte_s:g} s of the headers")
    sock.settimeout(watchdog.left())
    received = 0
    while True:
        try:
            chunk = response.read1(_CHUNK)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise watchdog.failure(exc, f"connection lost after {received:,} bytes of the body") from None
        watchdog.check()  # an end of file caused by the watchdog
        if not chunk:
            break
        if not received:  # from now on: the total deadline, and at most ``read_s`` of silence
            watchdog.arm(None)
            watchdog.timeout_message = f"no data for {limits.read_s:g} s while reading the body"
            sock.settimeout(limits.read_s)
        received += len(chunk)
        elapsed = time.monotonic() - started
        if received > max_bytes:
            raise DownloadError(f"more than {max_bytes:,} bytes")
        if elapsed > limits.total_s:
            raise DownloadTimeout(f"not finished within {limits.total_s:g} s in all")
        if elapsed > limits.grace_s and received / elapsed < limits.min_rate:
            raise DownloadTimeout(f"under {limits.min_rate / 1000:g} KB/s on average after {elapsed:.0f} s")
        sink.write(chunk)
    if declared is not None and received < declared:
        raise DownloadError(f"connection closed after {received:,} of {declared:,} bytes")
