"""Talks to one Ollama node through the official ``ollama`` client.

This is the one boundary where foreign exceptions (httpx, ollama, json) become
``NodeError`` subclasses, each with a message that says what failed and what
to do.
"""
from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .embedding import EmbedAnswer, as_vectors
from .errors import (
    CapabilityMissingError,
    ModelNotFoundError,
    NodeAuthError,
    NodeBackoffError,
    NodeError,
    NodeProtocolError,
    NodeTimeoutError,
    NodeUnavailableError,
    RequestRejectedError,
)
from .model_listing import installed_from, loaded_from
from .redact import redact_url
from .types import LoadedModel, ModelInfo, NodeSpec

# Ollama's words for a model it does not have: 'model "x" not found, try pulling it first', "model 'x' not found"
_MODEL_NOT_FOUND = re.compile(r"\bmodel\b.*\bnot found\b", re.IGNORECASE | re.DOTALL)
# Ollama's words when a model without vision is sent images: '"llama3.2:3b" does not support images'
_NO_VISION = re.compile(r"does not support (images|vision)", re.IGNORECASE)
MAX_RETRY_AFTER_S = 600.0  # a Retry-After longer than this is taken as this: the node is polled again by then
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


@dataclass(frozen=True)
class StreamPart:
    """One NDJSON line of /api/chat, reduced to what the engine uses."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()  # plain dicts: {"function": {"name": ..., "arguments": {...}}}
    done: bool = False
    done_reason: str | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    prompt_eval_count: int | None = None
    load_duration: int | None = None
    # /api/generate's final line carries the context; either route, per-token logprobs when asked
    context: tuple[int, ...] | None = None
    logprobs: tuple[dict[str, Any], ...] = ()
    prompt_eval_duration: int | None = None   # ns; with a cached prefix only the uncached part's


def _plain_calls(calls: Any) -> tuple[dict[str, Any], ...]:
    """The client's ToolCall models as plain dicts: the engine's chunks and results stay free of
    pydantic (copied across threads, written to JSON by the gateway)."""
    return tuple({"function": {"name": c.function.name, "arguments": dict(c.function.arguments or {})}}
                 for c in calls)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date; None when absent or not
    readable. Bounded to 0..MAX_RETRY_AFTER_S."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text) if text.isascii() else math.nan
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _response_headers(exc: BaseException) -> Mapping[str, str]:
    """The headers of the HTTP answer behind an ollama.ResponseError (the client raises it from the
    httpx error, which stays its ``__context__``)."""
    import httpx

    context = exc.__context__
    return context.response.headers if isinstance(context, httpx.HTTPStatusError) else {}


def node_error_from(exc: BaseException, node: str, url: str, *, during: str,
                    headers: Mapping[str, str] | None = None) -> NodeError:
    """The NodeError that any exception of the client stack (httpx, ollama, json) stands for: the one
    place that knows them. ``headers``: the HTTP answer's, when the caller has them (else they are
    looked for behind the exception)."""
    import httpx
    import ollama

    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, ollama.ResponseError):
        return _from_status(exc, node, url, during, _response_headers(exc) if headers is None else headers)
    if isinstance(exc, (ConnectionError, httpx.ConnectError)):
        return NodeUnavailableError(f"cannot connect to {url} {during}: is Ollama running there?", node=node)
    if isinstance(exc, httpx.TimeoutException):
        return NodeTimeoutError(f"timed out {during} ({type(exc).__name__})", node=node)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError)):
        return NodeUnavailableError(f"dropped the connection {during} ({exc or type(exc).__name__})", node=node)
    if isinstance(exc, json.JSONDecodeError):
        return NodeProtocolError(f"sent a line that is not JSON {during} — is {url} an Ollama server?", node=node)
    if isinstance(exc, httpx.HTTPError):
        return NodeUnavailableError(f"HTTP failure {during}: {exc or type(exc).__name__}", node=node)
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        # pydantic validation of a response that is JSON but not Ollama's shape
        return NodeProtocolError(f"sent a response {during} that is not Ollama's API: {exc}", node=node)
    return NodeUnavailableError(f"unexpected failure {during}: {type(exc).__name__}: {exc}", node=node)


def _from_status(exc: Any, node: str, url: str, during: str, headers: Mapping[str, str]) -> NodeError:
    """An HTTP error status (or an error line in a stream: no status) as the NodeError it means."""
    status = exc.status_code if exc.status_code and exc.status_code > 0 else None
    message = str(exc.error).strip()
    if _looks_like_html(message):
        return NodeProtocolError(f"answered {during} with an HTML page, not the Ollama API — "
                                 f"is {url} really an Ollama server?", node=node, status=status)
    if status is None:
        return NodeUnavailableError(f"reported an error {during}: {message}", node=node)
    if status == 503:
        return NodeUnavailableError(f"is busy (503) {during}: {message}", node=node, status=status)
    if status >= 500:
        return NodeUnavailableError(f"failed {during} with HTTP {status}: {message}", node=node, status=status)
    if status == 429:
        wait = parse_retry_after(headers.get("retry-after"))
        after = f", retry after {wait:g} s" if wait is not None else ""
        return NodeBackoffError(f"asked Hydra to back off {during} (HTTP 429{after}): {message}", node=node,
                                retry_after_s=wait)
    if status in (401, 403):
        return NodeAuthError(f"refuses Hydra's credentials {during} (HTTP {status}): {message}", node=node,
                             status=status)
    if status == 408:
        return NodeUnavailableError(f"refused {during} with HTTP {status}: {message}", node=node, status=status)
    if status == 404 and _MODEL_NOT_FOUND.search(message):
        return ModelNotFoundError(f"does not have the model {during} (HTTP 404): {message}", node=node, status=status,
                                  detail=message)
    if status == 400 and _NO_VISION.search(message):  # this node's model cannot see: another node's may
        return CapabilityMissingError(f"cannot take images {during} (HTTP 400): {message}", node=node, status=status,
                                      detail=message)
    return RequestRejectedError(f"rejected the request {during} (HTTP {status}): {message}", node=node, status=status,
                                detail=message)


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head


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
        self._threads = threading.local()  # per worker thread: its own generation client (see _stream_client)
        # Credentials in the URL go as HTTP basic auth: the ollama client drops them from its host.
        self._host, self._auth = _split_credentials(spec.url)
        self._shown_url = redact_url(spec.url)  # what messages and logs may show
        self._poller = ollama.Client(host=self._host, timeout=self._poll_timeout, verify=shared_ssl_context(),
                                     auth=self._auth)
        # The official client has no version() call; a plain GET on the same host does it.
        self._http = httpx.Client(base_url=self._host, timeout=self._poll_timeout, verify=shared_ssl_context(),
                                  auth=self._auth)

    def close(self) -> None:
        self._poller._client.close()  # ollama.Client exposes no close(); its httpx client is the resource
        self._http.close()

    def _stream_client(self) -> tuple[Any, Any]:
        """This thread's generation client and its socket tracker, made on first use (workers make
        theirs before work comes; ~0.5 ms with the shared SSL context)."""
        made = getattr(self._threads, "made", None)
        if made is None:
            import ollama

            transport, backend = _tracking_transport()
            made = self._threads.made = (ollama.Client(host=self._host, timeout=self._stream_timeout, auth=self._auth,
                                                       transport=transport, verify=shared_ssl_context()), backend)
        return made

    def prepare_thread(self) -> None:
        self._stream_client()

    def _fail(self, exc: BaseException, during: str) -> NodeError:
        return node_error_from(exc, self.spec.name, self._shown_url, during=during)

    # --- polling ---

    def version(self) -> str:
        try:
            response = self._http.get("/api/version")
        except Exception as exc:
            raise self._fail(exc, "on /api/version") from exc
        body = response.text
        if _looks_like_html(body) or "html" in response.headers.get("content-type", ""):
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
             extra: Mapping[str, Any] | None = None) -> Generator[StreamPart, None, None]:
        """Stream /api/chat. A lazy generator: close() it to drop the connection (cancel); or, from
        another thread, ``sockets.cut_all()`` when it may be blocked waiting for the node.
        ``extra``: more fields of the request as they are (logprobs, top_logprobs)."""
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                                  "options": options or None, "keep_alive": keep_alive, **(extra or {})}
        if think is not None:
            kwargs["think"] = think
        if format is not None:
            kwargs["format"] = format
        if tools:
            kwargs["tools"] = tools
        stage = "before the first token"
        client, backend = self._stream_client()  # runs on the consuming thread, at the first next()
        stream = client.chat(**kwargs)
        if sockets is not None:
            for sock in backend.sockets:  # a pooled connection may carry this request
                sockets.add(sock)
        backend.sink = sockets
        try:
            for part in stream:
                stage = "mid-stream"
                message = part.message
                yield StreamPart(
                    text=(message.content or "") if message else "",
                    thinking=(getattr(message, "thinking", None) or "") if message else "",
                    tool_calls=_plain_calls(message.tool_calls) if message and message.tool_calls else (),
                    done=bool(part.done), done_reason=part.done_reason,
                    eval_count=part.eval_count, eval_duration=part.eval_duration,
                    prompt_eval_count=part.prompt_eval_count, load_duration=part.load_duration,
                    logprobs=_plain_logprobs(part), prompt_eval_duration=part.prompt_eval_duration)
        except GeneratorExit:
            raise
        except Exception as exc:
            raise self._fail(exc, stage) from exc
        finally:
            backend.sink = None
            stream.close()  # drops the HTTP connection at once, so the node stops generating

    # --- /api/generate (generate.py says when a task goes there) ---

    def generate(self, model: str, arguments: Mapping[str, Any], *, options: dict[str, Any] | None = None,
                 think: bool | str | None = None, keep_alive: str | float | None = None,
                 format: str | dict[str, Any] | None = None,
                 sockets: StreamSockets | None = None) -> Generator[StreamPart, None, None]:
        """Stream /api/generate with ``arguments`` (prompt, suffix, raw, template, context, images,
        system, logprobs: generate.generate_arguments); the final part carries the context. Closed and
        cut like ``chat``."""
        kwargs: dict[str, Any] = {"model": model, "stream": True, "options": options or None,
                                  "keep_alive": keep_alive, **arguments}
        if think is not None:
            kwargs["think"] = think
        if format is not None:
            kwargs["format"] = format
        stage = "before the first token"
        client, backend = self._stream_client()
        stream = client.generate(**kwargs)
        if sockets is not None:
            for sock in backend.sockets:
                sockets.add(sock)
        backend.sink = sockets
        try:
            for part in stream:
                stage = "mid-stream"
                yield StreamPart(
                    text=part.response or "", thinking=getattr(part, "thinking", None) or "",
                    done=bool(part.done), done_reason=part.done_reason,
                    eval_count=part.eval_count, eval_duration=part.eval_duration,
                    prompt_eval_count=part.prompt_eval_count, load_duration=part.load_duration,
                    context=tuple(part.context) if part.context is not None else None,
                    logprobs=_plain_logprobs(part), prompt_eval_duration=part.prompt_eval_duration)
        except GeneratorExit:
            raise
        except Exception as exc:
            raise self._fail(exc, stage) from exc
        finally:
            backend.sink = None
            stream.close()


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


def _plain_logprobs(part: Any) -> tuple[dict[str, Any], ...]:
    """The client's Logprob models as plain dicts (Ollama's shape: token, logprob, bytes, top_logprobs)."""
    logprobs = getattr(part, "logprobs", None)
    if not logprobs:
        return ()
    return tuple(p.model_dump(exclude_none=True) for p in logprobs)


def _split_credentials(url: str) -> tuple[str, Any]:
    """(the URL without ``user:password@``, httpx basic auth for them or None)."""
    import httpx

    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
