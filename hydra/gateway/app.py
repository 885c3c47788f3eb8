"""The gateway: the whole cluster behind one Ollama- and OpenAI-compatible address, with /metrics.

One process, one Router: the gateway submits through the same ``Hydra`` the
app uses, so its tasks are routed, recorded and shown exactly like the app's.

    gateway = Gateway(hydra, host="127.0.0.1", port=8080, api_key=None).start()
    gateway.url        # http://127.0.0.1:8080 (port=0 picks a free port)
    gateway.stop()     # cancels the tasks it is still answering, stops the server, joins

Routes (modules): Ollama API in ``ollama_api``, OpenAI API in ``openai_api``,
task streaming and request plumbing in ``stream``, Prometheus in ``metrics``.
Before any route, ``RequestGuard`` applies ``guard``'s rules: a Host of this machine (or in
HYDRA_ALLOWED_HOSTS), an Origin of this machine's pages (or in HYDRA_ALLOWED_ORIGINS), JSON
bodies from browsers, CORS preflights answered; then, with an API key, every route but ``/``
needs ``Authorization: Bearer <key>`` (the scheme in any case).

Routing comes from request headers: ``X-Hydra-Mode`` (fast / reliable / async),
``X-Hydra-Priority`` (1..10), ``X-Hydra-Task-Type``; model ``auto`` or empty is
tier selection. Answers carry ``X-Hydra-Node``, ``X-Hydra-Model`` and
``X-Hydra-Task-Id``; a stream holds its headers back until the first chunk
names the node (at most ``stream.HEADER_WAIT_S``).

Carried through: ``tools`` (both APIs; the model's calls come back as
``message.tool_calls`` in each API's shape, and tool results sent back reach the
node), Ollama's ``format`` (JSON mode, JSON schema), ``keep_alive``, ``think``,
``options``; OpenAI's ``response_format`` (json_object, json_schema),
``reasoning_effort``, sampling fields, ``n``, ``logprobs`` and ``tool_choice`` (each OpenAI
field honoured or refused: ``openai_fields``); Ollama's generate-only fields run on the node's
``/api/generate`` (``raw``, ``suffix``, ``template``, ``context``, ``images``). Embeddings
(``/api/embed``, ``/api/embeddings``, ``/v1/embeddings``) are tasks of their own type, in ``embed_api``.
Model management (pull, delete, copy, create, push, blobs) across the nodes: ``models_api``. Every
request is logged on ``hydra.gateway.access`` unless HYDRA_ACCESS_LOG is off (``access_log``).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hydra.gateway import access_log, dashboard
from hydra.gateway.admission import INLINE_SUBMITS, SUBMIT_THREADS
from hydra.gateway.batch_api import BatchRoutes
from hydra.gateway.embed_api import EmbedRoutes
from hydra.gateway.guard import KEY_SETTING, ApiKey, Guard, cors_headers, preflight_headers
from hydra.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from hydra.gateway.model_listing import model_conflicts
from hydra.gateway.models_api import ModelRoutes
from hydra.gateway.ollama_api import OllamaRoutes
from hydra.gateway.openai_api import OpenAIRoutes, openai_error
from hydra.gateway.openai_completions import CompletionRoutes
from hydra.gateway.service_api import GatewayService
from hydra.sollol import TaskHandle, TaskResult
from hydra.sollol.redact import redact_text

# Needs no key: the root (Ollama's probe) and the dashboard's static files, which hold no data; the
# dashboard's script asks for the key itself before it reads /api/hydra/status.
OPEN_PATHS = frozenset({"/", "/dashboard", "/dashboard/dashboard.js", "/dashboard/dashboard.css"})

log = logging.getLogger("hydra.gateway")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
STATUS_DECISIONS = 50


class RequestGuard:
    """Every request meets the guard's rules first (Host, Origin, preflight, browser bodies: ``guard``),
    then the API key on every path but ``/``. Refusals in the shape of the API that was called; answers
    to an allowed cross-origin request carry the CORS headers, a 401 included (so the page can read why)."""

    def __init__(self, app: ASGIApp, guard: Guard, key: ApiKey | None) -> None:
        self.app = app
        self.guard = guard
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = {name: value.decode("latin-1") for name, value in scope["headers"] if name in _GUARDED}  # ASGI: lower-case names
        origin = seen.get(b"origin")
        refusal = self.guard.refusal(scope["method"], seen.get(b"host", ""), origin, seen.get(b"content-type"))
        if refusal is not None:
            await _refuse(scope, receive, send, refusal.status, refusal.message, refusal.kind)
            return
        if origin is not None:
            preflight = seen.get(b"access-control-request-method")
            if scope["method"] == "OPTIONS" and preflight is not None:
                await self._preflight(scope, receive, send, origin, preflight,
                                      seen.get(b"access-control-request-headers", ""))
                return
            send = _adding_headers(send, cors_headers(origin))
        if self.key is not None and scope["path"] not in OPEN_PATHS \
                and not self.key.matches(seen.get(b"authorization", "").encode("latin-1")):
            await _refuse(scope, receive, send, 401, f"missing or wrong API key: send Authorization: Bearer "
                          f"<{KEY_SETTING}>", "authentication_error", {"WWW-Authenticate": "Bearer"})
            return
        await self.app(scope, receive, send)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, origin: str, method: str,
                         headers: str) -> None:
        refusal = self.guard.preflight_refusal(method)
        if refusal is not None:
            await _refuse(scope, receive, send, refusal.status, refusal.message, refusal.kind)
            return
        await Response(status_code=204, headers=dict(preflight_headers(origin, headers)))(scope, receive, send)


_GUARDED = frozenset({b"host", b"origin", b"content-type", b"authorization", b"access-control-request-method",
                      b"access-control-request-headers"})


def _adding_headers(send: Send, extra: list[tuple[str, str]]) -> Send:
    encoded = [(name.encode(), value.encode("latin-1")) for name, value in extra]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *encoded]}
        await send(message)
    return sending


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str, kind: str,
                  headers: dict[str, str] | None = None) -> None:
    body = openai_error(status, message, kind) if scope["path"].startswith("/v1") else {"error": message}
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


def _error_body(path: str, status: int, message: str) -> dict[str, Any]:
    kind = "not_found_error" if status == 404 else "server_error" if status >= 500 else "invalid_request_error"
    return openai_error(status, message, kind) if path.startswith("/v1") else {"error": message}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods in the API's error shape, not Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return JSONResponse(_error_body(request.url.path, exc.status_code, message), status_code=exc.status_code,
                        headers=exc.headers)


async def _crash(request: Request, exc: Exception) -> Response:
    log.error("gateway: %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(_error_body(request.url.path, 500, f"internal error: {exc}"), status_code=500)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON, with every text redacted: node URLs (and errors that quote them) may hold
    ``user:password@``, and this is what ``/api/hydra/status`` shows."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {redact_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value))


class _OpenTasks:
    """The tasks this gateway is answering (cancelled on stop), the metrics of those that end, and the
    threads that submit them (threads start on first use; shut down with the app)."""

    def __init__(self, service: GatewayService) -> None:
        self.metrics = GatewayMetrics(service)
        self.submits = ThreadPoolExecutor(SUBMIT_THREADS, thread_name_prefix="hydra-gateway-submit")
        self.admitting = asyncio.Semaphore(INLINE_SUBMITS)   # binds to the server's loop on first use
        self._lock = threading.Lock()
        self._open: dict[str, TaskHandle] = {}

    def started(self, handle: TaskHandle) -> None:
        with self._lock:
            self._open[handle.id] = handle
        self.metrics.in_flight.inc()

    def finished(self, api: str, handle: TaskHandle, result: TaskResult | None, started: float) -> None:
        with self._lock:
            self._open.pop(handle.id, None)
        self.metrics.in_flight.dec()
        if result is None and handle.done():
            result = handle.result(timeout=1)
        view = result if result is not None else handle.view()
        access_log.note_task(view.node, view.model)
        self.metrics.finished(api, str(handle.task.mode or ""), result, time.monotonic() - started)

    def refused(self, api: str, model: Any, mode: str | None, status: int) -> None:
        self.metrics.refused(api, str(model or ""), mode or "", status)

    def cancel_all(self) -> None:
        with self._lock:
            handles = list(self._open.values())
        for handle in handles:
            handle.cancel()


def create_app(service: GatewayService, api_key: str | None = None, *, bind_host: str = "127.0.0.1",
               allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = (),
               access_log_on: bool = True) -> Starlette:
    """The gateway's ASGI app over ``service`` (a started ``hydra.service.Hydra``); ``bind_host`` and the
    two lists are the guard's (``guard.Guard``); a blank ``api_key`` is refused (ValueError);
    ``access_log_on``: a line per request on ``hydra.gateway.access`` (``access_log``)."""
    guard = Guard(bind_host=bind_host, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    key = ApiKey(api_key) if api_key is not None else None  # here, not in the middleware: Starlette builds it late
    tracker = _OpenTasks(service)
    ollama = OllamaRoutes(service, tracker)
    openai = OpenAIRoutes(service, tracker)
    batch = BatchRoutes(service)
    completions = CompletionRoutes(service, tracker)  # /v1/completions (issue 12)
    embed = EmbedRoutes(service, tracker)
    models = ModelRoutes(service)

    async def metrics(request: Request) -> Response:
        return Response(tracker.metrics.render(), media_type=CONTENT_TYPE)

    async def status(request: Request) -> Response:
        cluster = service.snapshot()
        snapshot = _jsonable(cluster)
        distribution = {k: snapshot.pop(k) for k in ("by_node", "by_model", "by_mode", "by_task_type",
                                                      "by_status", "failovers")}
        return JSONResponse({**snapshot, "distribution": distribution,
                             "decisions": _jsonable(service.decisions(STATUS_DECISIONS)),
                             "history": service.history_health().as_dict(),
                             "model_conflicts": [c.as_dict() for c in model_conflicts(cluster)]})

    async def root(request: Request) -> Response:
        # Browsers get the SOLLOL Dashboard; API clients probing for a server get Ollama's answer.
        return await (dashboard.page(request) if dashboard.wants_html(request) else ollama.root(request))

    routes = [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/dashboard", dashboard.page, methods=["GET", "HEAD"]),
        Route("/dashboard/dashboard.js", dashboard.script, methods=["GET", "HEAD"]),
        Route("/dashboard/dashboard.css", dashboard.style, methods=["GET", "HEAD"]),
        Route("/api/version", ollama.version, methods=["GET", "HEAD"]),
        Route("/api/tags", ollama.tags, methods=["GET", "HEAD"]),
        Route("/api/ps", ollama.ps, methods=["GET", "HEAD"]),
        Route("/api/show", ollama.show, methods=["POST"]),
        Route("/api/chat", ollama.chat, methods=["POST"]),
        Route("/api/generate", ollama.generate, methods=["POST"]),
        Route("/api/pull", models.pull, methods=["POST"]),
        Route("/api/push", models.push, methods=["POST"]),
        Route("/api/create", models.create, methods=["POST"]),
        Route("/api/delete", models.delete, methods=["DELETE"]),
        Route("/api/copy", models.copy, methods=["POST"]),
        Route("/api/blobs/{digest}", models.blob, methods=["HEAD", "POST"]),
        Route("/v1/models", openai.models, methods=["GET"]),
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        # The OpenAI Batch API (batch_api.py)
        Route("/v1/files", batch.upload, methods=["POST"]),
        Route("/v1/files/{file_id}", batch.file, methods=["GET"]),
        Route("/v1/files/{file_id}", batch.delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", batch.file_content, methods=["GET"]),
        Route("/v1/batches", batch.create, methods=["POST"]),
        Route("/v1/batches", batch.list_batches, methods=["GET"]),
        Route("/v1/batches/{batch_id}", batch.retrieve, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", batch.cancel, methods=["POST"]),
        Route("/v1/completions", completions.completions, methods=["POST"]),  # issue 12: completions, one model
        Route("/v1/models/{model:path}", openai.model, methods=["GET"]),
        Route("/api/embed", embed.embed, methods=["POST"]),
        Route("/api/embeddings", embed.embeddings, methods=["POST"]),
        Route("/v1/embeddings", embed.openai_embeddings, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/hydra/status", status, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await ollama.aclose()
        await models.aclose()
        tracker.submits.shutdown(wait=False, cancel_futures=True)  # every request has ended by now

    handlers = {HTTPException: _http_error, Exception: _crash}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.tracker = tracker
    app.add_middleware(RequestGuard, guard=guard, key=key)
    if access_log_on:
        app.add_middleware(access_log.AccessLog)  # added last: outermost, so it sees the guard's refusals
    return app


class Gateway:
    def __init__(self, service: GatewayService, *, host: str = "127.0.0.1", port: int = 8080,
                 api_key: str | None = None, allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = (), access_log_on: bool = True) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.app = create_app(service, api_key, bind_host=host, allowed_hosts=allowed_hosts,
                              allowed_origins=allowed_origins, access_log_on=access_log_on)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Bind now (a busy port raises OSError here), then serve in a background thread."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without
        # it Nagle holds each small write (the body after the headers) for the client's delayed ACK, ~40 ms.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        # log_config=None: the host process (Streamlit, the CLI) owns logging; uvicorn must not reconfigure it.
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2, backlog=2048)
        self._server = server = uvicorn.Server(config)
        # A daemon, as the engine's threads are: stop() joins it, but a process that never calls
        # Hydra.close() must still exit, and atexit (which calls it) runs only after non-daemon threads end.
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="hydra-gateway",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise OSError(f"the gateway did not start on {self.url} within {START_TIMEOUT_S:g} s")
        return self

    def stop(self) -> None:
        """Cancel the tasks still being answered, stop serving, join the server thread."""
        self.app.state.tracker.cancel_all()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("the gateway thread did not stop within %g s", STOP_TIMEOUT_S)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
