"""Loading and unloading a model, as Ollama does it: ``/api/generate`` with an empty prompt, or
``/api/chat`` with no messages, loads the model and answers one object with ``done_reason: "load"``;
with ``keep_alive: 0`` it unloads it (``"unload"``). Open WebUI's "unload model" and the clients'
warm-up calls send these.

Hydra loads the model on one node that has it (one where it is loaded already, else the least busy,
GPU first) and unloads it from every node where it is loaded. These are not tasks: no node generates,
so they bypass the queue and the history, and go to the nodes directly. The answer's ``hydra`` field
names the nodes that did it. A node's refusal (4xx) is answered as the node said it; no node able
to do it is 503 (load) or, for an unload, nothing to do (Ollama answers an unload of a model that is
not loaded with the same object).
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from hydra.gateway.admission import GatewayError
from hydra.gateway.service_api import GatewayService
from hydra.gateway.validate import Generation
from hydra.sollol import NodeSnapshot
from hydra.sollol.client import shared_ssl_context

LOAD_TIMEOUT_S = 300.0  # a cold load of a large model on a CPU node takes minutes
PS_REFRESH_TIMEOUT_S = 5.0  # waiting for the nodes' /api/ps after a change there (a poll is milliseconds)


class ModelLoads:
    """The gateway's loads and unloads (one HTTP client, made in the server's event loop)."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(LOAD_TIMEOUT_S, connect=5.0),
                                           verify=shared_ssl_context())
        return self._http

    async def answer(self, model: str | None, checked: Generation, *, chat: bool) -> Response:
        if model is None:
            raise GatewayError(400, "model is required to load or unload a model (a name from /api/tags)")
        nodes = self.service.snapshot().healthy_nodes
        if checked.load == "unload":
            done, failed = await self._unload(model, nodes, checked, chat)
        else:
            done, failed = await self._load(model, nodes, checked, chat)
        # The nodes' /api/ps as the monitors last saw it predates this: the next /api/ps must show the change.
        await asyncio.to_thread(self.service.poll_nodes, done, PS_REFRESH_TIMEOUT_S)
        body: dict[str, Any] = {"model": model, "created_at": _created_at()}
        if chat:
            body["message"] = {"role": "assistant", "content": ""}
        else:
            body["response"] = ""
        body.update(done=True, done_reason=checked.load, hydra={"nodes": done, **({"failed": failed} if failed else {})})
        return JSONResponse(body, headers={"X-Hydra-Model": model, **({"X-Hydra-Node": done[0]} if done else {})})

    async def _load(self, model: str, nodes: tuple[NodeSnapshot, ...], checked: Generation,
                    chat: bool) -> tuple[list[str], list[str]]:
        having = [n for n in nodes if any(m.name == model for m in n.installed)]
        having.sort(key=lambda n: (not any(m.name == model for m in n.loaded), n.in_flight / max(1, n.slots),
                                   not n.gpu, n.name))
        failed: list[str] = []
        for node in having:  # the first that loads it; a node that cannot is passed over
            error = await self._send(node, model, checked, chat)
            if error is None:
                return [node.name], failed
            failed.append(f"{node.name}: {error}")
        raise GatewayError(503, f'no node could load "{model}": ' + ("; ".join(failed) or "no healthy node has it"),
                           "service_unavailable")

    async def _unload(self, model: str, nodes: tuple[NodeSnapshot, ...], checked: Generation,
                      chat: bool) -> tuple[list[str], list[str]]:
        loaded = [n for n in nodes if any(m.name == model for m in n.loaded)]
        errors = await asyncio.gather(*(self._send(n, model, checked, chat) for n in loaded))
        done = [n.name for n, e in zip(loaded, errors, strict=True) if e is None]
        failed = [f"{n.name}: {e}" for n, e in zip(loaded, errors, strict=True) if e is not None]
        if failed and not done:
            raise GatewayError(502, f'no node could unload "{model}": ' + "; ".join(failed), "server_error")
        return done, failed

    async def _send(self, node: NodeSnapshot, model: str, checked: Generation, chat: bool) -> str | None:
        """None when the node did it; else why not. A 4xx is the request's: raised as the node said it."""
        payload: dict[str, Any] = {"model": model, **checked.fields, "stream": False}
        if chat:
            payload["messages"] = []
        else:
            payload["prompt"] = ""
        try:
            reply = await self._client().post(f"{node.url}/api/{'chat' if chat else 'generate'}", json=payload)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if reply.status_code == 200:
            return None
        message = _error_text(reply)
        if 400 <= reply.status_code < 500 and reply.status_code not in (401, 403, 408, 429):
            raise GatewayError(reply.status_code, message)
        return f"HTTP {reply.status_code}: {message}"


def _error_text(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200]
    return str(body.get("error") if isinstance(body, dict) and body.get("error") else body)[:200]


def _created_at() -> str:
    """As ollama_api.created_at (which imports this module): RFC 3339 in UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
