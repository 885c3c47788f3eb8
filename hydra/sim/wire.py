"""Writing HTTP/1.1 responses the way Ollama's Go server does.

Non-streaming bodies carry Content-Length so the connection stays alive.
Streams use chunked transfer encoding, one NDJSON line per chunk, written
with a single ``sendall`` each (TCP_NODELAY is set on accept) so every token
reaches the client as soon as it exists. Chunked framing also makes a
dropped connection detectable: the client sees an incomplete body instead
of a stream that merely ended, exactly as with a crashed Ollama runner.
"""
from __future__ import annotations

import io
import json
import socket
import struct
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"


def now_rfc3339() -> str:
    """Ollama's ``created_at``: RFC 3339, UTC, sub-second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Wire:
    """Response writer for one request; knows whether headers went out."""

    def __init__(self, handler: BaseHTTPRequestHandler, *, head_only: bool = False) -> None:
        self.h = handler
        self.head_only = head_only
        self.headers_sent = False
        self.streaming = False

    def _start(self, status: int, headers: dict[str, str]) -> None:
        # Ollama sends no Server header; BaseHTTPRequestHandler would add one.
        self.h.send_response_only(status)
        self.h.send_header("Date", formatdate(usegmt=True))
        for key, value in headers.items():
            self.h.send_header(key, value)
        self.h.end_headers()
        self.headers_sent = True

    def send_body(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._start(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})})
        if not self.head_only and body:
            self.h.wfile.write(body)

    def send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, JSON_TYPE, dumps(obj).encode(), headers)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"error": message}, headers)

    def start_stream(self) -> None:
        if not self.headers_sent:
            self._start(200, {"Content-Type": NDJSON_TYPE, "Transfer-Encoding": "chunked"})
            self.streaming = True

    def line(self, text: str) -> None:
        """One NDJSON line as one HTTP chunk, sent at once."""
        self.start_stream()
        data = (text + "\n").encode()
        self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def chunk(self, obj: object) -> None:
        self.line(dumps(obj))

    def end_stream(self) -> None:
        self.start_stream()
        self.h.wfile.write(b"0\r\n\r\n")

    def drop(self) -> None:
        """Close the connection mid-response: the peer gets EOF, no final chunk.

        A FIN (not an RST) is what a client sees when an Ollama runner process
        dies: the kernel closes its sockets cleanly, the body is just cut.
        """
        self.h.close_connection = True
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def reset(self) -> None:
        """Close with an RST (SO_LINGER 0), like a host or middlebox that resets."""
        self.h.close_connection = True
        try:
            self.h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The fd closes only once the buffered reader/writer let go of it.
            self.h.rfile.close()
            self.h.wfile.close()
            self.h.connection.close()
        except OSError:
            pass
        # BaseHTTPRequestHandler flushes wfile after every request: give it a sink.
        self.h.wfile = io.BytesIO()

    def abort(self) -> None:
        """The node is gone or the client left: stop without another byte."""
        self.drop()
