"""Talks to one Ollama node through the official ``ollama`` client.

Every request's failure goes through ``node_error_from`` (node_errors.py), so foreign exceptions
(httpx, ollama, json) leave this module only as ``NodeError`` subclasses.
"""
from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .embedding import EmbedAnswer, as_vectors
from .errors import NodeError, NodeProtocolError
from .model_listing import installed_from, loaded_from
from .node_errors import (  # noqa: F401 - MAX_RETRY_AFTER_S, parse_retry_after: they lived here, callers import them
    MAX_RETRY_AFTER_S,
    looks_like_html,
    node_error_from,
    parse_retry_after,
)
from .node_stream import NodeStream
from .redact import redact_url
from .stream_lines import StreamPart, chat_part, generate_part, library_body
from .types import LoadedModel, ModelInfo, NodeSpec

_ssl_lock = threading.Lock()
_ssl_context: Any = None


def shared_ssl_context() -> Any:
    """One SSL context for every client of the process. httpx builds a new one per client and
    transport, even for http:// URLs, at ~55 ms each (loading the CA bundle): with a thread per slot
    (a 200-slot node) and per node, start-up burnt seconds of CPU. A context is safe to share."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            import ssl

            _ssl_context = ssl.create_default_context()
            try:
                import certifi  # what httpx verifies against by default

                _ssl_context.load_verify_locations(certifi.where())
            except ImportError:  # pragma: no cover - httpx depends on certifi
                pass
        return _ssl_context


class StreamSockets:
    """The sockets one generation request opened, so another thread can cut it (cancel, timeout,
    move): closing a socket does not wake a thread blocked in recv(), shutting it down does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            cut = self.cut
        if cut:  # cut before it even connected
            _shutdown(sock)

    def cut_all(self) -> None:
        with self._lock:
            self.cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _tracking_transport() -> Any:
    """An httpx transport for ONE thread whose connections' sockets are all known, so a request in
    flight on that thread can be cut from another. One pool per thread: a pooled (keep-alive)
    connection is then only ever reused by the thread that made it."""
    import httpcore
    import httpx

    class TrackingBackend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self.inner = httpcore.SyncBackend()
            self.sockets: list[socket.socket] = []    # every live socket of this thread's pool
            self.sink: StreamSockets | None = None    # the request in flight

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            stream = self.inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                            socket_options=socket_options)
            sock = stream.get_extra_info("socket")
            if sock is not None:
                self.sockets = [s for s in self.sockets if s.fileno() != -1] + [sock]
                if self.sink is not None:
                    self.sink.add(sock)
            return stream

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return self.inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    backend = TrackingBackend()
    transport = httpx.HTTPTransport(verify=shared_ssl_context())
    # httpx offers no way to pass httpcore's (public) network_backend; its pool is swapped once here.
    transport._pool = httpcore.ConnectionPool(max_connections=10, max_keepalive_connections=4,
                                              keepalive_expiry=5.0, network_backend=backend)
    return transport, backend


class NodeClient:
    """One node's HTTP client. Thread-safe (httpx pools connections)."""

    def __init__(self, spec: NodeSpec, *, connect_timeout_s: float = 3.0, read_timeout_s: float = 300.0,
                 poll_timeout_s: float = 3.0) -> None:
        import httpx
        import ollama

        self.spec = spec
        self._stream_timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._poll_timeout = httpx.Timeout(poll_timeout_s, connect=min(connect_timeout_s, poll_timeout_s))
        self._connect_timeout_s, self._read_timeout_s = connect_timeout_s, read_timeout_s
        self._threads = threading.local()  # per worker thread: its own connections (_node_stream, _stream_client)
        self._streams: list[NodeStream] = []
        self._streams_lock = threading.Lock()
        # Credentials in the URL go as HTTP basic auth: the ollama client drops them from its host.
        self._host, self._auth = _split_credentials(spec.url)
        self._shown_url = redact_url(spec.url)  # what messages and logs may show
        self._poller = ollama.Client(host=self._host, timeout=self._poll_timeout, verify=shared_ssl_context(),
                                     auth=self._auth)
        # The generation streams send what the library sends: its headers (an OLLAMA_API_KEY's bearer
        # among them), the URL's credentials as basic auth.
        # Not its accept-encoding: http.client does not decompress.
        self._stream_headers = {k: v for k, v in self._poller._client.headers.items() if k != "accept-encoding"}
        if self._auth is not None:
            self._stream_headers["authorization"] = _basic_auth(spec.url)
        # The official client has no version() call; a plain GET on the same host does it.
        self._http = httpx.Client(base_url=self._host, timeout=self._poll_timeout, verify=shared_ssl_context(),
                                  auth=self._auth)

    def close(self) -> None:
        self._poller._client.close()  # ollama.Client exposes no close(); its httpx client is the resource
        self._http.close()
        with self._streams_lock:
            streams, self._streams = self._streams, []
        for stream in streams:  # the worker threads have ended (members.py closes the client after them)
            stream.close()

    def _stream_client(self) -> tuple[Any, Any]:
        """This thread's library client for /api/embed and its socket tracker, made on first use
        (~0.5 ms with the shared SSL context)."""
        made = getattr(self._threads, "made", None)
        if made is None:
            import ollama

            transport, backend = _tracking_transport()
            made = self._threads.made = (ollama.Client(host=self._host, timeout=self._stream_timeout, auth=self._auth,
                                                       transport=transport, verify=shared_ssl_context()), backend)
        return made

    def prepare_thread(self) -> None:
        self._node_stream()

    def _fail(self, exc: BaseException, during: str) -> NodeError:
        return node_error_from(exc, self.spec.name, self._shown_url, during=during)

    # --- polling ---

    def version(self) -> str:
        try:
            response = self._http.get("/api/version")
        except Exception as exc:
            raise self._fail(exc, "on /api/version") from exc
        body = response.text
        if looks_like_html(body) or "html" in response.headers.get("content-type", ""):
            raise NodeProtocolError(f"answered /api/version with an HTML page (HTTP {response.status_code}), "
                                    f"not the Ollama API — is {self._shown_url} really an Ollama server?",
                                    node=self.spec.name, status=response.status_code)
        if response.status_code != 200:
            import ollama
            raise node_error_from(ollama.ResponseError(body, response.status_code), self.spec.name, self._shown_url,
                                  during="on /api/version", headers=response.headers)
        try:
            return str(response.json()["version"])
        except Exception as exc:
            raise NodeProtocolError(f"answered /api/version without a version (got {body[:80]!r}) — "
                                    f"is {self._shown_url} an Ollama server?", node=self.spec.name) from exc

    def accepts_credentials(self) -> bool:
        """Whether the node takes Hydra's credentials on its generation route: a chat naming no model,
        which Ollama refuses at once (400, "model is required") and a gate wanting other credentials
        with 401/403. Costs the node nothing."""
        try:
            response = self._http.post("/api/chat", json={"model": "", "messages": []})
        except Exception as exc:
            raise self._fail(exc, "on /api/chat (credentials check)") from exc
        return response.status_code not in (401, 403)

    def tags(self) -> dict[str, ModelInfo]:
        try:
            listed = self._poller.list()
        except Exception as exc:
            raise self._fail(exc, "on /api/tags") from exc
        return installed_from(listed)

    def ps(self) -> dict[str, LoadedModel]:
        try:
            running = self._poller.ps()
        except Exception as exc:
            raise self._fail(exc, "on /api/ps") from exc
        return loaded_from(running)

    def capabilities(self, model: str) -> list[str] | None:
        """From /api/show; None when the node does not say (older Ollama)."""
        try:
            shown = self._poller.show(model)
        except Exception as exc:
            raise self._fail(exc, f"on /api/show {model}") from exc
        caps = getattr(shown, "capabilities", None)
        return list(caps) if caps is not None else None

    # --- generation ---

    def chat(self, model: str, messages: list[dict[str, Any]], *, options: dict[str, Any] | None = None,
             think: bool | str | None = None, keep_alive: str | float | None = None,
             format: str | dict[str, Any] | None = None,
             tools: list[dict[str, Any]] | None = None,
             sockets: StreamSockets | None = None,
             extra: Mapping[str, Any] | None = None,
             on_sent: Callable[[], None] | None = None) -> Generator[StreamPart, None, None]:
        """Stream /api/chat. A lazy generator: close() it to drop the connection (cancel); or, from
        another thread, ``sockets.cut_all()`` when it may be blocked waiting for the node.
        ``extra``: more fields of the request as they are (logprobs, top_logprobs). ``on_sent``: run
        once the request is sent, while the node works on it."""
        fields: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                                  "options": options or None, "keep_alive": keep_alive, **(extra or {})}
        if think is not None:
            fields["think"] = think
        if format is not None:
            fields["format"] = format
        if tools:
            fields["tools"] = tools
        library = bool(tools) or any(m.get("images") for m in messages)
        yield from self._stream("/api/chat", fields, chat_part, library, sockets, on_sent)

    # --- /api/generate (generate.py says when a task goes there) ---

    def generate(self, model: str, arguments: Mapping[str, Any], *, options: dict[str, Any] | None = None,
                 think: bool | str | None = None, keep_alive: str | float | None = None,
                 format: str | dict[str, Any] | None = None,
                 sockets: StreamSockets | None = None,
                 on_sent: Callable[[], None] | None = None) -> Generator[StreamPart, None, None]:
        """Stream /api/generate with ``arguments`` (prompt, suffix, raw, template, context, images,
        system, logprobs: generate.generate_arguments); the final part carries the context. Closed and
        cut like ``chat``."""
        fields: dict[str, Any] = {"model": model, "stream": True, "options": options or None,
                                  "keep_alive": keep_alive, **arguments}
        if think is not None:
            fields["think"] = think
        if format is not None:
            fields["format"] = format
        yield from self._stream("/api/generate", fields, generate_part, bool(arguments.get("images")), sockets,
                                on_sent)

    def _stream(self, path: str, fields: dict[str, Any], parse: Callable[[dict[str, Any]], StreamPart],
                library: bool, sockets: StreamSockets | None,
                on_sent: Callable[[], None] | None) -> Generator[StreamPart, None, None]:
        """One streamed request on this thread's connection (node_stream.py), each line a StreamPart.
        ``library``: the body is built by the ollama library's request model (tools: its validation
        decides what cannot be sent; images: its encoding), else it is the fields as they are."""
        # Outside the try: what the library refuses to build leaves as its own error, which the worker
        # calls unsendable (worker.RequestUnsendableError), not as a node's failure.
        body = library_body(path, fields) if library else {k: v for k, v in fields.items() if v is not None}
        stage = "before the first token"
        try:
            on_socket = sockets.add if sockets is not None else _ignore
            for line in self._node_stream().post_lines(path, body, on_socket=on_socket, on_sent=on_sent):
                stage = "mid-stream"
                yield parse(line)
        except GeneratorExit:
            raise
        except Exception as exc:
            raise self._fail(exc, stage) from exc

    def _node_stream(self) -> NodeStream:
        """This thread's connection for generation streams, made on first use (workers make theirs
        before work comes)."""
        made: NodeStream | None = getattr(self._threads, "stream", None)
        if made is None:
            made = self._threads.stream = NodeStream(
                self._host, self._stream_headers, connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s, ssl_context=shared_ssl_context)
            with self._streams_lock:
                self._streams.append(made)
        return made


    def embed(self, model: str, texts: list[str], *, truncate: bool | None = None, dimensions: int | None = None,
              keep_alive: str | float | None = None, options: dict[str, Any] | None = None,
              sockets: StreamSockets | None = None) -> EmbedAnswer:
        """/api/embed on this thread's client: ``sockets.cut_all()`` from another thread cuts the request."""
        client, backend = self._stream_client()
        if sockets is not None:
            for sock in backend.sockets:  # a pooled connection may carry this request
                sockets.add(sock)
        backend.sink = sockets
        try:
            answer = client.embed(model=model, input=texts, truncate=truncate, dimensions=dimensions,
                                  keep_alive=keep_alive, options=options)
        except Exception as exc:
            raise self._fail(exc, "on /api/embed") from exc
        finally:
            backend.sink = None
        if len(answer.embeddings) != len(texts):
            raise NodeProtocolError(f"answered /api/embed with {len(answer.embeddings)} vectors for {len(texts)} "
                                    "texts", node=self.spec.name)
        return EmbedAnswer(as_vectors(answer.embeddings), answer.prompt_eval_count, answer.total_duration,
                           answer.load_duration)


def _split_credentials(url: str) -> tuple[str, Any]:
    """(the URL without ``user:password@``, httpx basic auth for them or None)."""
    import httpx

    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))


def _basic_auth(url: str) -> str:
    parts = urlsplit(url)
    token = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    return "Basic " + base64.b64encode(token).decode()


def _ignore(_sock: socket.socket) -> None:
    pass
