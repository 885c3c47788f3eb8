"""Plain data the engine passes around: tasks, chunks, results, decisions, snapshots.

Snapshots and results are frozen dataclasses built from copies, so any thread
(a Streamlit page included) can read them without holding an engine lock.
"""
from __future__ import annotations

import itertools
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from . import validation as checks
from .addresses import parse_url, shown
from .errors import ConfigError
from .generate import check_generate_fields
from .node_types import (  # noqa: F401 - re-exported: every `from .types import ModelInfo` keeps working
    LoadedModel,
    ModelDetails,
    ModelInfo,
    ModelStatsSnapshot,
    NodeSnapshot,
)

if TYPE_CHECKING:  # prefix_cache.py defines it beside the record it describes
    from .prefix_cache import PrefixCacheSnapshot

TASK_TYPES = checks.TASK_TYPES  # defined beside the checks that use it


class RoutingMode(StrEnum):
    """How a node is chosen; the seed's three modes."""

    FAST = "fast"          # speed above all: least estimated completion time
    RELIABLE = "reliable"  # stability above speed: proven nodes, most capable
    ASYNC = "async"        # efficiency: CPU nodes first, lowest load, keep all busy

    @classmethod
    def parse(cls, value: str | RoutingMode, variable: str = "routing mode") -> RoutingMode:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ConfigError(variable, value, "one of " + ", ".join(m.value for m in cls)) from None


MODE_DESCRIPTIONS = {
    RoutingMode.FAST: "Interactive responses, real-time chat — speed above all.",
    RoutingMode.RELIABLE: "Critical tasks, production code — stability above speed.",
    RoutingMode.ASYNC: "Background tasks, parallel processing — efficiency above speed.",
}


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class FailureKind(StrEnum):
    """Why a task did not finish done: machine-readable, so callers (the gateway's HTTP status,
    the pages) decide by kind, never by matching the text of ``TaskResult.error``."""

    NO_ROUTE = "no_route"          # no node can serve the task's model(s) now
    REJECTED = "rejected"          # a node refused the request itself (a 4xx): the caller's to fix
    NODE_FAILED = "node_failed"    # the nodes that tried failed (errors, timeouts, broken streams)
    INTERNAL = "internal"          # a defect in Hydra itself ended the attempt (logged); no node is charged
    DEADLINE = "deadline"          # the task's own deadline passed
    CANCELLED = "cancelled"        # someone cancelled it
    INTERRUPTED = "interrupted"    # the router closed (or the process died) while it ran
    SHUTDOWN = "shutdown"          # the router closed before it ran


class Placement(StrEnum):
    """Where a tier entry should run (the seed's arrows)."""

    POWERFUL = "powerful"                    # powerful node preferred
    ANY = "any"                              # either node
    LIGHT = "light"                          # light node fallback
    MOST_CAPABLE_ONLY = "most_capable_only"  # only the most capable node


@dataclass(frozen=True)
class TierEntry:
    model: str
    placement: Placement = Placement.ANY
    # The list's last resort (the embedded node's tiny model): fast mode never trades down to it
    # while a tier model is routable (routing._score_fast_pairs).
    last_resort: bool = False


# What a node may declare. Generous for real hardware, small enough to catch a typo (slots=8000
# once made 7,986 threads): the largest open models are well under 2,000B parameters, and 4 TB of
# VRAM is more than eight of today's largest GPUs.
MAX_SLOTS = 256
MAX_MODEL_B = 2000.0
MAX_VRAM_MB = 4 * 1024 * 1024
MAX_NAME_CHARS = 64
NAME_RULE = f"a name of 1 to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-'"
_NAME = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_NAME_CHARS}}}\Z")


@dataclass(frozen=True)
class NodeSpec:
    """A node as declared in configuration; everything but the URL is optional.

    The URL is normalised (``addresses.parse_url``): scheme and host in lower case, IPv6 in brackets,
    Ollama's port when none is given, credentials kept. The name defaults to ``host:port``."""

    url: str
    name: str = ""
    max_model_b: float | None = None
    gpu: bool | None = None
    vram_mb: int | None = None
    slots: int = 2
    local: bool | None = None

    def __post_init__(self) -> None:
        address = parse_url("node url", str(self.url))
        ip = address.ip
        if ip is not None and ip.is_unspecified:
            raise ConfigError("node url", shown(self.url), "a node's address; 0.0.0.0 and :: are addresses to "
                              "listen on (this machine is 127.0.0.1 or [::1])")
        object.__setattr__(self, "url", address.url)
        if not self.name:
            object.__setattr__(self, "name", address.host_port)
        elif not (_NAME.match(self.name) or self.name == address.host_port):
            raise ConfigError("node name", shown(self.name), f"{NAME_RULE} (or the node's host:port)")
        self._check_attributes()
        if self.local is None:
            object.__setattr__(self, "local", address.host == "localhost" or bool(ip and ip.is_loopback))

    def _check_attributes(self) -> None:
        if type(self.slots) is not int or not 1 <= self.slots <= MAX_SLOTS:
            raise ConfigError(f"slots of node {self.name}", self.slots, f"an integer from 1 to {MAX_SLOTS}")
        if self.max_model_b is not None and (
                isinstance(self.max_model_b, bool) or not isinstance(self.max_model_b, int | float)
                or not 0 < self.max_model_b <= MAX_MODEL_B):  # NaN fails the comparison too
            raise ConfigError(f"max_model_b of node {self.name}", self.max_model_b,
                              f"a number above 0 and at most {MAX_MODEL_B:g} (billions of parameters)")
        if self.vram_mb is not None and (type(self.vram_mb) is not int or not 1 <= self.vram_mb <= MAX_VRAM_MB):
            raise ConfigError(f"vram_mb of node {self.name}", self.vram_mb, f"an integer from 1 to {MAX_VRAM_MB}")
        for flag in ("gpu", "local"):
            if not isinstance(getattr(self, flag), bool | None):
                raise ConfigError(f"{flag} of node {self.name}", getattr(self, flag), "true or false")


_task_seq = itertools.count()


@dataclass
class Task:
    """One unit of work. Only ``prompt`` (or ``messages``) is required."""

    prompt: str = ""
    messages: list[dict[str, Any]] | None = None
    task_type: str | None = None          # None = classify from the prompt
    model: str | None = None              # None = tier selection
    mode: RoutingMode | str | None = None  # None = the router's default mode
    priority: int = 5                     # 1..10, 10 most urgent
    max_tokens: int | None = None         # sent as options.num_predict
    think: bool | str | None = None       # Ollama's think parameter
    thinking_budget: int | None = None    # stop thinking after this many tokens, then answer
    options: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    min_success_rate: float | None = None  # reliable mode threshold override
    deadline: float | None = None         # seconds from submission; None = no deadline
    format: str | dict[str, Any] | None = None  # Ollama's format: "json", or a JSON schema the answer follows
    keep_alive: str | float | None = None  # how long the node keeps the model loaded after ("5m", 0, -1)
    tools: list[dict[str, Any]] | None = None  # Ollama's tools: functions the model may call instead of answering
    meta: dict[str, Any] = field(default_factory=dict)  # carried along untouched (e.g. the reasoning assessment)
    background: bool = False              # batch work: queued behind every interactive task, whatever its age
    # /api/generate's own fields: a task with any of them runs on the node's /api/generate (generate.py)
    suffix: str | None = None             # the text after the answer (fill-in-the-middle)
    raw: bool | None = None               # the prompt goes to the model as it is, without its template
    template: str | None = None           # a prompt template instead of the model's own
    context: list[int] | None = None      # what an earlier /api/generate answer returned, to go on from it
    images: list[str] | None = None       # base64 images with the prompt; only a vision model takes them
    # log probabilities of the answer's tokens (Ollama 0.12+), on either route
    logprobs: bool | None = None
    top_logprobs: int | None = None       # 0..20 alternatives per token
    # embeddings (task_type "embedding"): the texts to embed instead of a prompt; the vectors come back
    # in TaskResult.embeddings, one per text, in order (sollol/embedding.py)
    input: list[str] | None = None
    truncate: bool | None = None          # Ollama's truncate: cut a text longer than the context (default true)
    dimensions: int | None = None         # keep the first n dimensions of each vector (renormalised)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    submitted_at: float = field(default_factory=time.time)
    seq: int = field(default_factory=lambda: next(_task_seq))

    def validate(self) -> None:
        """Raise TaskError on the first field that is not allowed, naming it (and make ``mode`` a
        RoutingMode, and ``options`` Ollama's types: integers as int, null values dropped). What goes
        to the node is checked here once, for every caller, so that no worker meets a request the
        client library or the node must refuse (validation.check_task)."""
        checks.check_task(self)
        check_generate_fields(self)
        if self.mode is not None:
            self.mode = RoutingMode.parse(self.mode, "task mode")


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer (a failover continues it on another node: the notice of why is
    on the result, never in the stream). ``tool_calls`` are the
    model's calls of the task's tools, as Ollama sends them: ``{"function": {"name", "arguments"}}``
    (a chunk may carry them and no text)."""

    text: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    node: str = ""
    model: str = ""


class Candidate(NamedTuple):
    """One node as a routing decision saw it. A named tuple, not a dataclass: a decision over 64
    nodes makes 64 of these, and a tuple is made in half the time."""

    node: str
    model: str
    score: float | None      # lower is better; None when excluded
    eligible: bool
    reason: str


@dataclass(frozen=True)
class RoutingDecision:
    task_id: str
    time: float              # wall clock
    mode: RoutingMode
    task_type: str
    node: str | None         # None: no node could take it (yet)
    model: str | None
    reason: str
    candidates: tuple[Candidate, ...] = ()
    attempt: int = 1
    priority: int = 5


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    status: TaskStatus
    text: str = ""
    thinking: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()  # every call the answer made, in order
    node: str | None = None
    model: str | None = None
    mode: RoutingMode | None = None
    task_type: str | None = None
    attempts: int = 0
    failovers: int = 0
    ttft_s: float | None = None
    duration_s: float | None = None
    queued_s: float | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    tokens_per_s: float | None = None
    thinking_tokens: int = 0
    decision: RoutingDecision | None = None
    error: str | None = None
    failure: FailureKind | None = None  # set whenever status is not DONE
    nodes: tuple[str, ...] = ()  # every node that delivered output, in order (a failover mid-answer: several)
    notice: str = ""             # the latest failover mid-answer, for the record (never in ``text``)
    # what /api/generate and logprobs add, and a node's refusal as the node said it
    context: tuple[int, ...] | None = None       # /api/generate's context: send it back to go on
    logprobs: tuple[dict[str, Any], ...] = ()    # Ollama's per-token logprobs, when the task asked
    rejected_status: int | None = None           # REJECTED by a node: its HTTP status (400, 404, ...)
    rejected_message: str = ""                   # REJECTED by a node: its own message
    # embeddings: one unit vector per input text, in order (an embedding task's answer; empty otherwise)
    embeddings: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class ClusterSnapshot:
    time: float
    nodes: tuple[NodeSnapshot, ...]
    models: tuple[ModelStatsSnapshot, ...]
    queue_depth: int
    in_flight: int
    max_concurrent: int
    parallel: bool
    default_mode: RoutingMode
    vram_monitoring: bool
    by_node: dict[str, int]
    by_model: dict[str, int]
    by_mode: dict[str, int]
    by_task_type: dict[str, int]
    by_status: dict[str, int]
    failovers: int
    prefix_cache: PrefixCacheSnapshot | None = None   # prefix-aware placement's hits and savings

    @property
    def healthy_nodes(self) -> tuple[NodeSnapshot, ...]:
        return tuple(n for n in self.nodes if n.healthy)

    def node(self, name: str) -> NodeSnapshot | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class TaskView:
    """A point-in-time copy of one task, for pages that poll (never blocks)."""

    task_id: str
    prompt: str
    status: TaskStatus
    text: str
    thinking: str
    node: str | None
    model: str | None
    mode: RoutingMode | None
    task_type: str | None
    priority: int
    submitted_at: float          # wall clock
    ttft_s: float | None
    duration_s: float | None
    tokens_per_s: float | None
    eval_count: int | None
    attempts: int
    restarts: int                # failovers mid-answer (the answer continued on another node)
    reason: str                  # routing reason of the latest decision
    error: str | None
    notice: str = ""             # latest failover notice
    tool_calls: tuple[dict[str, Any], ...] = ()  # the tools the model called (gateway clients send tools)
    nodes: tuple[str, ...] = ()  # every node that delivered output, in order


@dataclass(frozen=True)
class TaskEvent:
    """What the router tells listeners (history, gateway) at each state change.

    kind: "queued" (task), "routed" (decision), "running" (node, model, attempt),
    "restart" (notice), "finished" (result).
    """

    kind: str
    task: Task
    decision: RoutingDecision | None = None
    result: TaskResult | None = None
    node: str | None = None
    model: str | None = None
    attempt: int = 0
    notice: str = ""
