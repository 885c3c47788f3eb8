"""The hot path to a node: one worker thread's keep-alive HTTP/1.1 connection, over which it streams
/api/chat and /api/generate as NDJSON lines (plain dicts).

Why not the ``ollama`` client here (it still does every other call, client.py): per streamed
request it builds httpx's and httpcore's request and response objects, runs h11's state machine and
validates each line into pydantic models. Measured against the simulated node (a 3-token answer,
then 16 tokens): time to first token 2.15 -> 1.33 ms, CPU per request 1.72 -> 0.56 ms and
3.95 -> 1.52 ms with ``http.client`` and ``json`` alone. The request body still comes from the
library's own request models when it carries tools or images (client.py): what the library refuses
to send stays refused, and images are encoded as it encodes them.

A connection belongs to one thread (a worker's slot), so nothing here is locked. It is reused while
the node keeps it alive; one that the node closed while idle is replaced before the request, and a
request whose reused connection fails before any answer is sent once more on a fresh one.
"""
from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

IDLE_EXPIRY_S = 5.0   # a connection idle longer than this is not reused (the node may be closing it)
READ_SIZE = 65536
_RETRYABLE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)


class NodeStatusError(Exception):
    """The node answered with an HTTP error status: its text and headers (node_errors.py reads them)."""

    def __init__(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status, self.text, self.headers = status, text, headers


class StreamErrorLine(Exception):
    """A line of the stream that carries ``error`` (Ollama's way to fail mid-stream, no status)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ConnectFailed(ConnectionError):
    """The TCP (or TLS) connection to the node could not be made."""


class NodeStream:
    """One thread's connection to one node. ``url``: the node's URL without credentials;
    ``headers``: every request's (content type, user agent, authorization)."""

    def __init__(self, url: str, headers: Mapping[str, str], *, connect_timeout_s: float, read_timeout_s: float,
                 ssl_context: Callable[[], Any]) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._ssl_context = ssl_context
        self._proxy = _proxy_for(url)
        self._conn: http.client.HTTPConnection | None = None
        self._idle_since = 0.0

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def post_lines(self, path: str, body: Mapping[str, Any], *, on_socket: Callable[[socket.socket], None],
                   on_sent: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """POST ``body`` as JSON and yield each NDJSON line of the answer as a dict. ``on_socket`` is
        given the connection's socket before anything is sent (so another thread can cut it);
        ``on_sent`` runs once the request is on its way, while the node works on it. Closing the
        generator early drops the connection, so the node stops generating."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        response = self._send(path, payload, on_socket)
        if on_sent is not None:
            on_sent()
        return self._lines(response)

    def _send(self, path: str, payload: bytes, on_socket: Callable[[socket.socket], None]) -> http.client.HTTPResponse:
        target = (f"{'https' if self._https else 'http'}://{self._host}:{self._port}" if self._proxy_absolute
                  else "") + self._base + path
        for fresh in (False, True):
            reused = self._ready(fresh)
            conn = self._conn
            assert conn is not None and conn.sock is not None
            on_socket(conn.sock)
            try:
                conn.request("POST", target, body=payload, headers=self._headers)
                return conn.getresponse()
            except _RETRYABLE:
                self.close()
                if not reused:
                    raise
        raise AssertionError("unreachable: the second try uses a fresh connection")

    @property
    def _proxy_absolute(self) -> bool:
        """Through a plain HTTP proxy the request names the whole URL (a TLS one tunnels instead)."""
        return self._proxy is not None and not self._https

    def _ready(self, fresh: bool) -> bool:
        """Make sure a connection is open; True when it is a reused one."""
        conn = self._conn
        if conn is not None and not fresh and time.monotonic() - self._idle_since < IDLE_EXPIRY_S \
                and not _readable(conn.sock):
            return True
        self.close()
        self._conn = self._connect()
        return False

    def _connect(self) -> http.client.HTTPConnection:
        host, port = (self._proxy[0], self._proxy[1]) if self._proxy else (self._host, self._port)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout, context=self._ssl_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        if self._proxy is not None:
            headers = {"Proxy-Authorization": self._proxy[2]} if self._proxy[2] else None
            if self._https:
                conn.set_tunnel(self._host, self._port, headers=headers)
            elif headers:
                self._headers.update(headers)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise  # reads as a timeout, not as a refusal
        except OSError as exc:
            conn.close()
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _lines(self, response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
        done = False
        try:
            if response.status >= 300:
                text = response.read().decode("utf-8", errors="replace")
                done = True
                raise NodeStatusError(response.status, text, {k.lower(): v for k, v in response.getheaders()})
            for raw in _chunked_lines(response) if response.chunked else response:
                line = raw.strip()
                if not line:
                    continue
                part = json.loads(line)
                error = part.get("error") if isinstance(part, dict) else None
                if error:
                    raise StreamErrorLine(str(error))
                yield part
            done = True
        finally:
            if done and not response.will_close:
                self._idle_since = time.monotonic()  # read to its end: the connection serves the next request
            else:
                self.close()  # cut short (cancel, cap, failure): the node must see the connection go


def _chunked_lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The lines of a chunked body, read here rather than by http.client's readline (a dozen Python
    calls per line): whatever one read brings, a line or fifty under load, is split at once. The
    response is closed at the end, as http.client closes it, so the connection takes the next request."""
    fp = response.fp
    assert fp is not None
    buf, pos, tail = b"", 0, b""   # unread bytes from pos; a line's start still waiting for its end

    def more() -> bytes:
        data = fp.read1(READ_SIZE)
        if not data:
            raise http.client.IncompleteRead(tail)
        return data

    while True:
        end = buf.find(b"\r\n", pos)
        while end < 0:
            buf, pos = buf[pos:] + more(), 0
            end = buf.find(b"\r\n")
        size = int(buf[pos:end].split(b";", 1)[0], 16)
        pos = end + 2
        if size == 0:
            break
        while len(buf) - pos < size + 2:
            buf, pos = buf[pos:] + more(), 0
        data, pos = buf[pos:pos + size], pos + size + 2
        lines = (tail + data).split(b"\n") if tail else data.split(b"\n")
        tail = lines.pop()
        yield from lines
    while True:  # the trailer section ends with an empty line
        end = buf.find(b"\r\n", pos)
        while end < 0:
            buf, pos = buf[pos:] + more(), 0
            end = buf.find(b"\r\n")
        if end == pos:
            break
        pos = end + 2
    if tail:
        yield tail
    response.close()


def _readable(sock: socket.socket | None) -> bool:
    """An idle keep-alive connection with something to read has been closed by the node (or is broken)."""
    if sock is None or sock.fileno() < 0:
        return True
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _proxy_for(url: str) -> tuple[str, int, str | None] | None:
    """(host, port, Proxy-Authorization) of the environment's proxy for ``url`` (HTTP_PROXY, HTTPS_PROXY,
    NO_PROXY, as httpx honours them), or None."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, not in the stubs
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    auth = None
    if p.username is not None:
        token = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(token).decode()
    return p.hostname or "localhost", p.port or 80, auth
