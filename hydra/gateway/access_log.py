"""The gateway's access log: one line per request, through Python logging (logger
``hydra.gateway.access``, level INFO), on unless ``HYDRA_ACCESS_LOG`` is off.

    GET /api/tags 200 1.2ms node=- model=-
    POST /api/chat 200 812.4ms node=light model=llama3.2:3b

A line says the method, the path, the status, the time until the answer's last byte, and the node
and model that answered: for a generation request those of the task's result (the node that
finished it, after a failover too); for the others what the answer's X-Hydra-Node and
X-Hydra-Model headers name. Never a body, a header's value, or the query string (where a client
may put a key); the path and names are cut short and stripped of control characters, so a request
cannot forge a line. A request the client left before any answer is logged with status ``-``.
"""
from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("hydra.gateway.access")

SETTING = "HYDRA_ACCESS_LOG"
MAX_FIELD_CHARS = 200


@dataclass
class _Line:
    node: str = ""
    model: str = ""
    from_task: bool = False


_current: ContextVar[_Line | None] = ContextVar("hydra_gateway_access_line", default=None)


def note_task(node: str | None, model: str | None) -> None:
    """The node and model of the task this request ran (called where a generation request ends)."""
    line = _current.get()
    if line is not None:
        line.node, line.model, line.from_task = node or "", model or "", True


def clean(text: str) -> str:
    """``text`` fit for one log line: printable, without spaces, bounded; "-" when empty."""
    kept = "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:MAX_FIELD_CHARS])
    return (kept + ("..." if len(text) > MAX_FIELD_CHARS else "")) or "-"


class AccessLog:
    """ASGI middleware, outermost, so a request the guard refuses is logged too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        line = _Line()
        token = _current.set(line)
        started = time.perf_counter()
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name == b"x-hydra-node" and not line.from_task:
                        line.node = value.decode("latin-1")
                    elif name == b"x-hydra-model" and not line.from_task:
                        line.model = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            status = status or 500  # Starlette's outer error handler answers 500 for what escaped
            raise
        finally:
            _current.reset(token)
            log.info("%s %s %s %.1fms node=%s model=%s", clean(scope["method"]), clean(scope["path"]),
                     status if status is not None else "-", (time.perf_counter() - started) * 1000,
                     clean(line.node), clean(line.model))
