"""The embedded node's HTTP face: Ollama's endpoints and fields over one LlamaEngine.

Stdlib `ThreadingHTTPServer`, HTTP/1.1 with keep-alive; streams are NDJSON in
chunked encoding, one chunk per token, written with TCP_NODELAY so each token
leaves at once. A client that goes away (its socket reaches EOF while queued
or generating, or a write fails) stops its generation so the next one starts.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from . import api
from .api import ApiError, GenerateCall
from .engine import Abandoned, EngineError, Generation, LlamaEngine
from .model_files import DEFAULT_MODEL_NAME, ServedModel, bundled_model_path

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
READY_MARKER = "hydra-node: ready at "  # printed by the CLI; EmbeddedNode waits for it
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class ClientGone(Exception):
    """The client closed its connection while we were answering it."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class NodeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], engine: LlamaEngine | None,
                 info: ServedModel) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.engine = engine
        self.info = info
        super().__init__(address, NodeHandler)


class NodeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "hydra-node"
    server: NodeHTTPServer

    # --- plumbing ------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8", head)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _client_gone(self) -> bool:
        """EOF (or reset) on the socket: the client has closed its end."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _read_raw(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _body(self) -> dict[str, Any]:
        try:
            raw = self._read_raw()
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "malformed request body framing") from None
        if not raw.strip():
            raise ApiError(400, "missing request body")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"invalid JSON in request body: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = {
            ("GET", "/"): self._root, ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version, ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags, ("HEAD", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps, ("HEAD", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/generate"): lambda head: self._generate(chat=False),
            ("POST", "/api/chat"): lambda head: self._generate(chat=True),
            ("POST", "/api/embed"): self._embed, ("POST", "/api/embeddings"): self._embed,
        }
        handler = routes.get((method, path))
        try:
            if handler is None:
                self._read_raw()  # drain, so the keep-alive connection stays usable
                raise ApiError(404, f"404 page not found: {method} {path}")
            handler(method == "HEAD")
        except ApiError as e:
            try:
                self._error(e.status, str(e))
            except OSError:
                self.close_connection = True
        except (ClientGone, *_DISCONNECTS):
            self.close_connection = True
        except Exception:
            log.exception("unexpected error serving %s %s", method, path)
            self.close_connection = True
            try:
                self._error(500, "internal error in the embedded node; see its log")
            except OSError:
                pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    # --- endpoints ---------------------------------------------------------------

    def _root(self, head: bool) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8", head)

    def _version(self, head: bool) -> None:
        self._json(200, {"version": api.OLLAMA_API_VERSION}, head)

    def _tags(self, head: bool) -> None:
        self._json(200, api.tags(self.server.info), head)

    def _ps(self, head: bool) -> None:
        self._json(200, api.ps(self.server.info, self._engine().n_ctx), head)

    def _show(self, head: bool) -> None:
        api.resolve_model(self._body(), self.server.info.name)
        self._json(200, api.show(self.server.info))

    def _embed(self, head: bool) -> None:
        raise api.refuse_embedding(self._body(), self.server.info.name)

    def _generate(self, chat: bool) -> None:
        t0 = time.monotonic_ns()
        call = api.parse_generate(self._body(), self.server.info.name, chat)
        if call.empty:
            return self._json(200, api.final_chunk(call, None, t0, reason="load"))
        if call.stream:
            return self._stream(call, t0)
        result = self._run(call, on_token=lambda _piece: self._client_gone())
        if result.cancelled:
            raise ClientGone()
        self._json(200, api.final_chunk(call, result, t0, text=result.text))

    def _engine(self) -> LlamaEngine:
        engine = self.server.engine
        if engine is None:  # serving starts once the model is loaded: only a failed start leaves none
            raise ApiError(503, "the model is not loaded")
        return engine

    def _run(self, call: GenerateCall, on_token: Callable[[str], bool]) -> Generation:
        try:
            return self._engine().generate(
                messages=call.messages, prompt=call.prompt, request=call.request,
                on_token=on_token, abandoned=self._client_gone)
        except Abandoned:
            log.info("client left while queued; request dropped")
            raise ClientGone() from None
        except EngineError as e:
            raise ApiError(e.status, str(e)) from None

    def _stream(self, call: GenerateCall, t0: int) -> None:
        started = False

        def write(obj: dict[str, Any]) -> None:
            nonlocal started
            if not started:
                # Headers wait for the first token: an error before it still
                # gets its proper status code.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                started = True
            line = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))

        def on_token(piece: str) -> bool:
            try:
                write(api.token_chunk(call, piece))
            except OSError:  # broken pipe, reset: the client is gone
                return True
            return self._client_gone()

        try:
            result = self._run(call, on_token)
        except ApiError as e:
            if not started:
                raise
            write({"error": str(e)})
        else:
            if result.cancelled:
                log.info("client disconnected after %d tokens; generation stopped",
                         result.streamed)
                raise ClientGone()
            write(api.final_chunk(call, result, t0))
        self.wfile.write(b"0\r\n\r\n")


class NodeServer:
    """The embedded node in this process: load the model, serve HTTP on a thread.

    `port=0` picks a free port; `url` tells which. Loopback only unless
    `allow_remote=True`.
    """

    def __init__(self, model_path: str | None = None, name: str = DEFAULT_MODEL_NAME, *,
                 host: str = "127.0.0.1", port: int = 0, threads: int | None = None,
                 ctx: int | None = None, allow_remote: bool = False,
                 verbosity: int = 1) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"refusing to listen on {host!r}: not a loopback address "
                             "(127.0.0.0/8, ::1, localhost); pass allow_remote=True "
                             "(--allow-remote) to expose the node")
        self.model_path = model_path or bundled_model_path()
        self.name, self.host, self.port = name, host, port
        self.threads, self.ctx, self.verbosity = threads, ctx, verbosity
        self.info: ServedModel | None = None
        self.engine: LlamaEngine | None = None
        self._httpd: NodeHTTPServer | None = None
        self._bound_port: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("NodeServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def loaded(self) -> LlamaEngine:
        """The engine that start() loaded."""
        if self.engine is None:
            raise RuntimeError("NodeServer is not started")
        return self.engine

    def start(self) -> Self:
        self.info = ServedModel.load(self.model_path, self.name)
        ctx = self.ctx or min(4096, self.info.context_length or 4096)
        # Bind before loading the model: a busy port fails at once.
        try:
            self._httpd = NodeHTTPServer((self.host, self.port), None, self.info)
        except OSError as e:
            hint = " (another process is using that port)" if e.errno == errno.EADDRINUSE else ""
            raise OSError(e.errno, f"cannot listen on {self.host}:{self.port}: "
                          f"{e.strerror}{hint}") from e
        try:
            self.engine = LlamaEngine(self.model_path, threads=self.threads, n_ctx=ctx,
                                       verbosity=self.verbosity)
        except BaseException:
            self._httpd.server_close()
            self._httpd = None
            raise
        self._httpd.engine = self.engine
        self._bound_port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name=f"hydra-node-{self._bound_port}", daemon=True)
        self._thread.start()
        # The digest (sha256 of the file) is for /api/tags; have it ready.
        threading.Thread(target=self.info.digest, name="hydra-node-digest", daemon=True).start()
        log.info("serving %s (%s) at %s with %d threads, ctx %d, load %.2fs", self.name,
                 self.model_path, self.url, self.engine.threads, ctx, self.engine.load_ns / 1e9)
        return self

    def serve_forever(self) -> None:
        """Block until stop() (or KeyboardInterrupt in the caller)."""
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(0.5)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
