"""A node behind HTTP basic auth (``http://user:password@host``): Hydra sends the credentials on every
kind of request (polls and generation), and never shows the password in an error."""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from hydra.sollol.client import NodeClient
from hydra.sollol.errors import NodeError
from hydra.sollol.types import NodeSpec

EXPECTED = "Basic " + base64.b64encode(b"ops:p@ss").decode()


class _Guarded(BaseHTTPRequestHandler):
    """Answers like Ollama only when the basic-auth header is right; 401 otherwise."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, body: dict[str, object] | str) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append(auth)
        if auth != EXPECTED:
            self.send_response(401)
            payload = json.dumps({"error": "unauthorized"}).encode()
        else:
            self.send_response(200)
            payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._reply({"version": "0.12.0"} if self.path == "/api/version" else {"models": []})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(json.dumps({"model": "m", "message": {"role": "assistant", "content": "hi"}, "done": True,
                                "eval_count": 1, "eval_duration": 1000}) + "\n")


@pytest.fixture
def guarded() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Guarded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Guarded.seen = []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_credentials_in_the_url_are_sent_on_polls_and_on_generation(guarded: str) -> None:
    client = NodeClient(NodeSpec(url=f"http://ops:p%40ss@{guarded}", name="guarded"))
    try:
        assert client.version() == "0.12.0"
        assert client.tags() == {}
        parts = list(client.chat("m", [{"role": "user", "content": "hello"}]))
        assert "".join(p.text for p in parts) == "hi"
    finally:
        client.close()
    assert _Guarded.seen and set(_Guarded.seen) == {EXPECTED}


def test_a_wrong_password_is_refused_and_never_shown(guarded: str) -> None:
    client = NodeClient(NodeSpec(url=f"http://ops:wrong-s3cret@{guarded}", name="guarded"))
    try:
        with pytest.raises(NodeError) as refused:
            client.version()
    finally:
        client.close()
    assert "wrong-s3cret" not in str(refused.value)
