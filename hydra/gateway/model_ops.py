"""Model management across the cluster, without HTTP routes: which nodes a pull, delete, copy,
create, push or blob upload goes to, and the calls to those nodes.

``models_api`` answers the gateway's routes with it, and the Nodes page (``hydra.ui.model_admin``)
pulls and deletes with it directly, so both say the same thing in the same words.

Nodes are called with their own credentials (``user:password@`` in a node's URL goes as basic
auth, as ``hydra.sollol.client`` does); what comes back is redacted, and a node is named by its
name, never by its URL. Every line a node streams gains ``"node"``; a node that fails ends with a
line ``{"node", "status": "failed", "reason"}`` (not ``"error"``: Ollama's clients stop reading at
an error line, and the other nodes' lines must still reach them). The request's last line is
Ollama's ``{"status": "success"}`` when every node succeeded, else its ``{"error"}`` saying which
nodes failed and why, and which succeeded.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from hydra.sollol import ClusterSnapshot, NodeSnapshot, NodeSpec
from hydra.sollol.fit import fit_reason
from hydra.sollol.model_names import model_key
from hydra.sollol.redact import redact_text
from hydra.sollol.types import ModelInfo

NODE_HEADER = "x-hydra-node"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0           # between two lines of a pull: a registry can be slow to start a layer
BYTES_PER_PARAM = 0.6            # Q4_K_M, the library's default quantisation: what a pull most often fetches
MAX_REASON_CHARS = 500
# "7b", "1.5b", "135m", "8x7b" in a tag or a name ("smollm2:135m", "qwen2.5-coder:7b-instruct-q4")
_PARAMS = re.compile(r"(?<![0-9a-z.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)


class TargetError(Exception):
    """No node to send the request to: the HTTP status and Ollama's error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Target:
    """One node to call: its name, its URL without credentials, and those as basic auth."""

    name: str
    base_url: str
    auth: httpx.BasicAuth | None = field(default=None, repr=False)

    @classmethod
    def of(cls, spec: NodeSpec) -> Target:
        parts = urlsplit(spec.url)
        if parts.username is None:
            return cls(spec.name, spec.url.rstrip("/"))
        netloc = parts.netloc.rsplit("@", 1)[1]
        bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")
        return cls(spec.name, bare, httpx.BasicAuth(unquote(parts.username), unquote(parts.password or "")))


@dataclass
class Outcome:
    """How one node's part of a request ended."""

    node: str
    ok: bool = False
    status: int = 0                 # the node's HTTP status (0: no answer at all)
    reason: str = ""


def estimate_size_b(name: str) -> float | None:
    """Billions of parameters a model name announces ("qwen2.5-coder:7b" 7.0, "smollm2:135m" 0.135,
    "mixtral:8x7b" 56.0), or None when it announces none ("mistral:latest")."""
    tag = name.rsplit("/", 1)[-1]
    found = [m for m in _PARAMS.finditer(tag)]
    if not found:
        return None
    experts, value, unit = found[-1].groups()  # the tag's figure wins over the name's ("llama3:8b")
    size = float(value) * (int(experts) if experts else 1)
    return size / 1000 if unit.lower() == "m" else size


def model_info(name: str, snapshot: ClusterSnapshot) -> ModelInfo:
    """What is known of a model's size: from a node that has it, else from its name."""
    key = model_key(name)
    for node in snapshot.nodes:
        for m in node.installed:
            if model_key(m.name) == key and m.size_b:
                return m
    size_b = estimate_size_b(name)
    return ModelInfo(name, size_b, int(size_b * 1e9 * BYTES_PER_PARAM) if size_b else 0)


def lists(node: NodeSnapshot, name: str) -> bool:
    """Whether ``node``'s model list has ``name`` (as Ollama resolves names)."""
    key = model_key(name)
    return any(model_key(m.name) == key for m in node.installed)


def settled(snapshot: ClusterSnapshot, nodes: Iterable[str], name: str, *, present: bool) -> bool:
    """Whether each of ``nodes`` lists ``name`` (``present``) or no longer does: routing sees the change."""
    wanted = set(nodes)
    return all(lists(n, name) == present for n in snapshot.nodes if n.name in wanted)


def why_cannot_hold(node: NodeSnapshot, info: ModelInfo) -> str | None:
    """None when ``node`` is healthy and can hold the model (declared max_model_b, VRAM), else why not."""
    if not node.healthy:
        return f"unhealthy ({node.last_error or 'not answering'})"
    return fit_reason(info, node.max_model_b, node.gpu, node.vram_total_mb)


def named_target(specs: Sequence[NodeSpec], header: str | None) -> Target | None:
    """The node an ``X-Hydra-Node`` header names; None without one; TargetError (400) for a name
    that is not a node's, listing the names."""
    if header is None or not header.strip():
        return None
    wanted = header.strip()
    for spec in specs:
        if spec.name == wanted:
            return Target.of(spec)
    names = ", ".join(sorted(s.name for s in specs)) or "none"
    raise TargetError(400, f"X-Hydra-Node {redact_text(wanted)[:100]!r} is not a node of this cluster; the nodes are: {names}")


def _targets(specs: Sequence[NodeSpec], names: Iterable[str]) -> list[Target]:
    wanted = set(names)
    return [Target.of(s) for s in specs if s.name in wanted]


def pull_targets(specs: Sequence[NodeSpec], snapshot: ClusterSnapshot, name: str) -> list[Target]:
    """Every healthy node able to hold the model; TargetError (503) saying why of each when none is."""
    info = model_info(name, snapshot)
    reasons = {n.name: why_cannot_hold(n, info) for n in snapshot.nodes}
    able = [node for node, why in reasons.items() if why is None]
    if not able:
        why = "; ".join(f"{node}: {reason}" for node, reason in reasons.items()) or "the cluster has no nodes"
        raise TargetError(503, f"no healthy node can hold {name} ({why})")
    return _targets(specs, able)


def holder_targets(specs: Sequence[NodeSpec], snapshot: ClusterSnapshot, name: str) -> list[Target]:
    """Every node whose model list has ``name``, healthy ones first (the others too: a delete is for all);
    TargetError (404, Ollama's words) when none has it."""
    holders = [n.name for n in sorted(snapshot.nodes, key=lambda n: not n.healthy) if lists(n, name)]
    if not holders:
        raise TargetError(404, f"model '{name}' not found")
    by_name = {s.name: s for s in specs}
    return [Target.of(by_name[h]) for h in holders if h in by_name]  # healthy nodes first


def sole_target(specs: Sequence[NodeSpec], snapshot: ClusterSnapshot, what: str) -> Target:
    """The only healthy node, for a request that must name one when there are several."""
    healthy = [n.name for n in snapshot.healthy_nodes]
    if len(healthy) == 1:
        return _targets(specs, healthy)[0]
    names = ", ".join(sorted(n.name for n in snapshot.nodes)) or "none"
    raise TargetError(400, f"{what} goes to one node: name it with the X-Hydra-Node header (the nodes are: {names})")


def new_client() -> httpx.AsyncClient:
    from hydra.sollol.client import shared_ssl_context

    return httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                             verify=shared_ssl_context(), trust_env=False)


def error_text(body: bytes, status: int) -> str:
    """A node's error answer as one short, redacted sentence (Ollama's {"error"} when it sent one)."""
    try:
        parsed = json.loads(body)
        text = str(parsed["error"]) if isinstance(parsed, dict) and "error" in parsed else body.decode(errors="replace")
    except (ValueError, UnicodeDecodeError):
        text = body.decode(errors="replace")
    text = " ".join(text.split()) or f"HTTP {status}"
    return redact_text(text)[:MAX_REASON_CHARS]


def failure_reason(exc: Exception) -> str:
    kind = type(exc).__name__
    return redact_text(f"{kind}: {exc}" if str(exc) else kind)[:MAX_REASON_CHARS]


def _failed(outcome: Outcome, status: int, reason: str) -> dict[str, Any]:
    outcome.status, outcome.reason = status, reason
    return {"node": outcome.node, "status": "failed", "reason": reason}


async def _stream_one(client: httpx.AsyncClient, target: Target, path: str, body: dict[str, Any],
                      outcome: Outcome, out: asyncio.Queue[dict[str, Any] | None]) -> None:
    """One node's progress lines into ``out``, each naming the node; then how it ended; then None."""
    try:
        async with client.stream("POST", target.base_url + path, json={**body, "stream": True},
                                 auth=target.auth or httpx.USE_CLIENT_DEFAULT) as reply:
            outcome.status = reply.status_code
            if reply.status_code != 200:
                await out.put(_failed(outcome, reply.status_code, error_text(await reply.aread(), reply.status_code)))
                return
            last: dict[str, Any] = {}
            async for text in reply.aiter_lines():
                if not text.strip():
                    continue
                try:
                    last = json.loads(text)
                except ValueError:
                    await out.put(_failed(outcome, 502, f"sent a line that is not JSON: {text[:80]!r}"))
                    return
                if not isinstance(last, dict):
                    await out.put(_failed(outcome, 502, f"sent a line that is not an object: {text[:80]!r}"))
                    return
                if "error" in last:
                    await out.put(_failed(outcome, 500, redact_text(str(last["error"]))[:MAX_REASON_CHARS]))
                    return
                await out.put({**last, "node": target.name})
            if last.get("status") != "success":
                await out.put(_failed(outcome, 502, "the stream ended before \"success\""))
                return
            outcome.ok = True
    except httpx.HTTPError as exc:
        await out.put(_failed(outcome, 0, failure_reason(exc)))
    finally:
        await out.put(None)


async def stream_all(client: httpx.AsyncClient, targets: Sequence[Target], path: str, body: dict[str, Any],
                     outcomes: list[Outcome]) -> AsyncIterator[dict[str, Any]]:
    """Every target's progress lines as they come, all targets at once; ``outcomes`` is filled with
    one ``Outcome`` per target. Leaving early (the client went away) cancels every node's call."""
    out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    outcomes.extend(Outcome(t.name) for t in targets)
    tasks = [asyncio.create_task(_stream_one(client, t, path, body, o, out)) for t, o in zip(targets, outcomes)]
    running = len(tasks)
    try:
        while running:
            line = await out.get()
            if line is None:
                running -= 1
            else:
                yield line
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def call_all(client: httpx.AsyncClient, targets: Sequence[Target], method: str, path: str,
                   body: dict[str, Any]) -> list[Outcome]:
    """One plain request (delete, copy) to every target at once; how each ended."""
    async def one(target: Target) -> Outcome:
        outcome = Outcome(target.name)
        try:
            reply = await client.request(method, target.base_url + path, json=body,
                                         auth=target.auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            outcome.reason = failure_reason(exc)
            return outcome
        outcome.status = reply.status_code
        outcome.ok = reply.status_code == 200
        if not outcome.ok:
            outcome.reason = error_text(reply.content, reply.status_code)
        return outcome
    return list(await asyncio.gather(*(one(t) for t in targets)))


def summary(what: str, outcomes: Sequence[Outcome]) -> tuple[int, dict[str, Any]]:
    """The request's ending: (200, Ollama's success) when every node succeeded, else an HTTP status
    and Ollama's ``{"error"}`` naming each node that failed (and why) and each that succeeded. The
    status is the nodes' own when they all failed alike (a 404 stays a 404), else 502."""
    done = [o.node for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return 200, {"status": "success", "nodes": done}
    statuses = {o.status for o in failed}
    status = statuses.pop() if len(statuses) == 1 and not done else 502
    if not 400 <= status < 600:
        status = 502
    said = "; ".join(f"{o.node}: {o.reason}" for o in failed)
    message = f"{what} failed on {len(failed)} of {len(outcomes)} node(s) ({said})"
    if done:
        message += f"; done on {', '.join(done)}"
    return status, {"error": message}
