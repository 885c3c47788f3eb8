"""The worker's lean connection to a node (hydra/sollol/node_stream.py): keep-alive reuse, a connection
the node closed while idle, proxies from the environment, errors as NodeErrors. Real sockets on
127.0.0.1: a small HTTP server stands for the node, written here so each test can shape its answers."""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from hydra.sollol.client import NodeClient, StreamSockets
from hydra.sollol.errors import NodeBackoffError, NodeUnavailableError
from hydra.sollol.node_stream import NodeStream, _proxy_for
from hydra.sollol.types import NodeSpec

LINES = [{"message": {"role": "assistant", "content": "Hel"}, "done": False},
         {"message": {"role": "assistant", "content": "lo"}, "done": False},
         {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", "eval_count": 2,
          "eval_duration": 1000, "prompt_eval_count": 3}]


def _chunked(lines: list[dict]) -> bytes:
    body = b""
    for line in lines:
        data = json.dumps(line).encode() + b"\n"
        body += f"{len(data):x}\r\n".encode() + data + b"\r\n"
    return body + b"0\r\n\r\n"


class FakeNode:
    """Accepts connections on 127.0.0.1 and answers each request with ``answer(request_head)``; after
    ``per_connection`` answers it closes the connection (a node ending an idle keep-alive one)."""

    def __init__(self, answer: Callable[[bytes], bytes], per_connection: int = 1000) -> None:
        self.answer, self.per_connection = answer, per_connection
        self.heads: list[bytes] = []
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            for _ in range(self.per_connection):
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(next((h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), b"0"))
                while len(rest) < length:
                    rest += conn.recv(65536)
                buffer = rest[length:]
                self.heads.append(head)
                conn.sendall(self.answer(head))

    def close(self) -> None:
        self._server.close()


def ndjson_answer(_head: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
            + _chunked(LINES))


@pytest.fixture
def fake_node() -> Iterator[Callable[..., FakeNode]]:
    made: list[FakeNode] = []

    def make(answer: Callable[[bytes], bytes] = ndjson_answer, per_connection: int = 1000) -> FakeNode:
        made.append(node := FakeNode(answer, per_connection))
        return node
    yield make
    for node in made:
        node.close()


def _texts(client: NodeClient) -> str:
    return "".join(p.text for p in client.chat("m", [{"role": "user", "content": "hi"}], sockets=StreamSockets()))


def test_one_connection_serves_request_after_request(fake_node):
    node = fake_node()
    client = NodeClient(NodeSpec(name="n", url=node.url))
    assert [_texts(client) for _ in range(5)] == ["Hello"] * 5
    assert node.connections == 1
    assert node.heads[0].startswith(b"POST /api/chat HTTP/1.1")


def test_a_connection_the_node_closed_while_idle_is_replaced(fake_node):
    node = fake_node(per_connection=1)  # answers once, then closes: the next request must not fail
    client = NodeClient(NodeSpec(name="n", url=node.url))
    assert [_texts(client) for _ in range(3)] == ["Hello"] * 3
    assert node.connections == 3


def test_a_stream_cut_short_drops_its_connection(fake_node):
    node = fake_node()
    client = NodeClient(NodeSpec(name="n", url=node.url))
    stream = client.chat("m", [{"role": "user", "content": "hi"}], sockets=StreamSockets())
    assert next(stream).text == "Hel"
    stream.close()  # a cancel: the node must see the connection go, not have it parked for reuse
    assert _texts(client) == "Hello"
    assert node.connections == 2


def test_an_error_status_keeps_its_headers(fake_node):
    node = fake_node(lambda _h: b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 18\r\n\r\n"
                                b'{"error": "busy!"}')
    client = NodeClient(NodeSpec(name="n", url=node.url))
    with pytest.raises(NodeBackoffError) as caught:
        _texts(client)
    assert caught.value.retry_after_s == 7 and "busy!" in str(caught.value)


def test_credentials_in_the_url_go_as_basic_auth(fake_node):
    node = fake_node()
    client = NodeClient(NodeSpec(name="n", url=f"http://hydra:s%40cret@127.0.0.1:{node.port}"))
    assert _texts(client) == "Hello"
    assert b"\r\nauthorization: Basic aHlkcmE6c0BjcmV0" in node.heads[0]  # hydra:s@cret


def test_streams_ask_for_no_compression(fake_node):
    node = fake_node()  # http.client does not decompress: a gzip answer from a proxy must not be asked for
    assert _texts(NodeClient(NodeSpec(name="n", url=node.url))) == "Hello"
    assert b"gzip" not in node.heads[0].lower()


def test_no_node_listening_reads_as_cannot_connect():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    client = NodeClient(NodeSpec(name="n", url=f"http://127.0.0.1:{port}"))
    with pytest.raises(NodeUnavailableError, match="cannot connect"):
        _texts(client)


def test_through_a_plain_http_proxy_the_request_names_the_whole_url(fake_node, monkeypatch):
    proxy = fake_node()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    stream = NodeStream("http://localhost:11434", {}, connect_timeout_s=3, read_timeout_s=10, ssl_context=lambda: None)
    lines = list(stream.post_lines("/api/chat", {"model": "m"}, on_socket=lambda _s: None))
    assert [line["done"] for line in lines] == [False, False, True]
    assert proxy.heads[0].startswith(b"POST http://localhost:11434/api/chat HTTP/1.1")


@pytest.mark.parametrize(("env", "url", "expected"), [
    ({}, "http://localhost:11434", None),
    ({"HTTP_PROXY": "http://127.0.0.1:3128"}, "http://localhost:11434", ("127.0.0.1", 3128, None)),
    ({"HTTP_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "localhost"}, "http://localhost:11434", None),
    ({"HTTP_PROXY": "http://127.0.0.1:3128"}, "https://localhost:11434", None),   # https wants HTTPS_PROXY
    ({"HTTPS_PROXY": "http://u:p@127.0.0.1:3129"}, "https://localhost:11434",
     ("127.0.0.1", 3129, "Basic dTpw")),
])
def test_the_proxy_a_node_url_goes_through(monkeypatch, env, url, expected):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _proxy_for(url) == expected


def test_lines_are_read_whatever_the_chunks_carry(fake_node):
    """Two lines in one chunk, one line over three chunks, a chunk extension and a trailer."""
    data = b"".join(json.dumps(line).encode() + b"\n" for line in LINES)
    first = data.index(b"\n", data.index(b"\n") + 1) + 1  # the first two lines
    pieces = [data[:first], data[first:first + 5], data[first + 5:first + 9], data[first + 9:]]
    body = b"".join(f"{len(p):x};ext=1\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\nx-trailer: y\r\n\r\n"
    node = fake_node(lambda _h: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body)
    client = NodeClient(NodeSpec(name="n", url=node.url))
    parts = list(client.chat("m", [{"role": "user", "content": "hi"}]))
    assert [p.text for p in parts] == ["Hel", "lo", ""] and parts[-1].done and parts[-1].eval_count == 2
    assert _texts(client) == "Hello"  # the same connection takes the next request after the trailer
    assert node.connections == 1


def test_a_node_that_drops_the_connection_mid_stream_reads_as_dropped(fake_node):
    cut = _chunked(LINES[:1])[:-5]  # one line, then the connection ends without the last chunk
    node = fake_node(lambda _h: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + cut, per_connection=1)
    client = NodeClient(NodeSpec(name="n", url=node.url))
    with pytest.raises(NodeUnavailableError, match="dropped the connection mid-stream"):
        list(client.chat("m", [{"role": "user", "content": "hi"}]))
