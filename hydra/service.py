"""Hydra: the one entry point for the app, the gateway and the command line.

Builds the Router from the settings (defaults < environment < saved), applies
the model tiers and the reasoning engine to every task (``task_intake``), writes
history, and starts the embedded llama.cpp node when the cluster would otherwise
be empty.
"""
from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hydra import node_changes, reasoning, tiers
from hydra.config import Settings, load_settings, parse_value
from hydra.embedded_start import (  # noqa: F401 - EMBEDDED_HOST/PORT: callers import them from here
    EMBEDDED_HOST,
    EMBEDDED_NAME,
    EMBEDDED_PORT,
    EMBEDDED_URL,
    EmbeddedStarter,
    EmbeddedStatus,
    why_embedded,
)
from hydra.history import History, HistoryHealth, HistoryUnavailableError
from hydra.history.recorder import EventWriter, PartialSaver
from hydra.sollol import (
    ClusterSnapshot,
    ConfigError,
    NodeSpec,
    Router,
    RoutingDecision,
    TaskHandle,
)
from hydra.sollol.config import SollolConfig
from hydra.sollol.redact import redact_url
from hydra.sollol.types import TierEntry
from hydra.task_counts import DEFAULT_SOURCE, TaskCounts, TaskKey
from hydra.task_intake import (  # noqa: F401 - QUEUED_COMMIT_WAIT_S: importable from here as before
    KEPT_HANDLES,
    QUEUED_COMMIT_WAIT_S,
    TaskIntake,
)

if TYPE_CHECKING:  # imported when first used: most runs start no gateway and no batch
    from hydra.batch import BatchManager
    from hydra.gateway import Gateway

log = logging.getLogger("hydra")


# Settings that map one-to-one onto SollolConfig fields the running router can change.
_ROUTER_FIELDS = {
    "SOLLOL_DEFAULT_ROUTING_MODE": "default_mode",
    "SOLLOL_PARALLEL_REQUESTS": "parallel_requests",
    "SOLLOL_MAX_CONCURRENT_REQUESTS": "max_concurrent_requests",
    "SOLLOL_VRAM_MONITORING": "vram_monitoring",
    "SOLLOL_MIN_VRAM_MB": "min_vram_mb",
    "SOLLOL_MIN_SUCCESS_RATE": "min_success_rate",
    "SOLLOL_PREFIX_AFFINITY": "prefix_affinity",
}
_TIER_SETTINGS = {"HYDRA_REASONING_MODEL", "HYDRA_USE_REASONING_MODEL"}


def setup_logging() -> None:
    """Hydra's log lines (the seed's start-up lines among them) on stderr, once."""
    logger = logging.getLogger("hydra")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Hydra:
    def __init__(self, settings: Settings, history: History, *, engine_overrides: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self.history = history
        self._engine_overrides = dict(engine_overrides or {})
        self._lock = threading.Lock()              # _batches
        # Every change of the settings reads them, changes the running router and adopts the result:
        # two at once would each start from the same settings and the later adoption would drop the
        # other's change. Reentrant: add_node and the others call _apply while they hold it.
        self._settings_lock = threading.RLock()
        self._embedded = EmbeddedStarter(settings.db_path.parent, self._embedded_ready)
        self.embedded_url: str | None = None
        self.gateway: Gateway | None = None
        self._closed = threading.Event()
        # The router is told the tiers and the classifier: the service classifies every task itself
        # (submit), so the router's classifier serves only tasks that reach it without a type.
        self.router = Router(config=self._sollol_config(), tiers=self._tiers(), classify=tiers.classify)
        self._recorder = EventWriter(history)  # every event into history, in order, on a thread of its own
        self._intake = TaskIntake(self.router, history, self._recorder, lambda: self._settings)
        self._saver = PartialSaver(history, lambda: self.tasks(KEPT_HANDLES))
        self.router.subscribe(self._recorder.on_event)
        self._task_counts = TaskCounts()  # every task's end, by source too: /metrics' hydra_tasks_total
        self.router.subscribe(self._task_counts.on_event)
        self._started = False
        self._batches: BatchManager | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **engine_overrides: Any) -> Hydra:
        """Settings from the environment and the saved overrides in HYDRA_DB; ConfigError on a bad value."""
        setup_logging()
        first = load_settings(env)                 # strict on the environment; gives the database path
        history = History(first.db_path)
        settings = load_settings(env, history.load_settings())
        return cls(settings, history, engine_overrides=engine_overrides, env=env)

    # --- lifecycle ---

    def start(self, *, embedded_in_background: bool = False) -> Hydra:
        """Start the router, history, the gateway and (when wanted) the embedded node. With
        ``embedded_in_background`` the embedded node loads on a thread and joins the router when it
        answers (the app: its first page must not wait for the model); otherwise start waits for it."""
        if self._started:
            return self
        self._started = True
        try:
            interrupted = self.history.mark_interrupted()
        except HistoryUnavailableError as exc:  # the disk full at start-up, say: a message, not a traceback
            raise HistoryUnavailableError(f"HYDRA_DB={self.history.path} cannot be written at start-up: {exc.reason}; "
                                          "free some space there or set HYDRA_DB to a file on another disk") from None
        if interrupted:
            log.info("%d task(s) left queued or running by the last run are marked interrupted", interrupted)
        if not embedded_in_background:
            self._start_embedded(in_background=False)
        self._recorder.start()
        self.router.start()
        if embedded_in_background:
            self._start_embedded(in_background=True)
        self._saver.start()
        self._resume_batches()
        self._maybe_start_gateway()
        atexit.register(self.close)
        return self

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.gateway is not None:
            self.gateway.stop()
        if self._batches is not None:
            self._batches.close()  # before the router: rows in flight go back to pending, for the next start
        self.router.close()
        self._saver.close()
        self._recorder.close()  # after everything the router said at close
        self._embedded.close()
        self.history.close()

    def _maybe_start_gateway(self) -> None:
        """The Ollama/OpenAI-compatible gateway and /metrics over this same Router (HYDRA_GATEWAY_PORT, 0: off)."""
        port = self._settings.gateway_port
        if not port:
            return
        from hydra.gateway import Gateway
        try:
            self.gateway = Gateway(self, host=self._settings.gateway_host, port=port,
                                   api_key=self._settings.api_key or None,
                                   allowed_hosts=self._settings.allowed_hosts,
                                   allowed_origins=self._settings.allowed_origins,
                                   access_log_on=self._settings.access_log).start()
        except OSError as exc:
            log.error("the gateway could not listen on %s:%d (%s); set HYDRA_GATEWAY_PORT to a free port, "
                      "or 0 to turn it off", self._settings.gateway_host, port, exc)
            return
        log.info("gateway: Ollama and OpenAI APIs and /metrics at %s", self.gateway.url)

    # --- batches (hydra/batch) ---

    @property
    def batches(self) -> BatchManager:
        """The batch jobs over this service, in HYDRA_DB (opened on first use)."""
        with self._lock:
            if self._batches is None:
                from hydra.batch.manager import for_service
                self._batches = for_service(self)
            return self._batches

    def _resume_batches(self) -> None:
        """Batches a stopped process left running resume here; their rows in flight are settled first."""
        try:
            self.batches.recover()
        except Exception:  # a batch table this Hydra cannot read must not keep the app from starting
            log.exception("batches could not be resumed")

    def _start_embedded(self, *, in_background: bool) -> None:
        reason = why_embedded(self._settings)
        if reason is None:
            return
        self.embedded_url = EMBEDDED_URL
        if in_background:
            self._embedded.start_in_background(reason)
        elif self._embedded.start_now(reason).phase != "ready":
            self.embedded_url = None

    def _embedded_ready(self, url: str) -> None:
        self.router.add_node(NodeSpec(url=url, name=EMBEDDED_NAME, gpu=False, max_model_b=1.0, slots=1, local=True))

    @property
    def embedded_status(self) -> EmbeddedStatus:
        """The embedded node: off, starting (the app warms it in the background), ready or failed."""
        return self._embedded.status

    # --- settings ---

    @property
    def settings(self) -> Settings:
        return self._settings

    def _sollol_config(self) -> SollolConfig:
        return self._settings.sollol_config(**self._engine_overrides)

    def _tiers(self) -> dict[str, tuple[TierEntry, ...]]:
        return tiers.build_tiers(reasoning_model=self._settings.reasoning_model,
                                 use_reasoning_model=self._settings.use_reasoning_model,
                                 fallback=tiers.EMBEDDED_MODEL)

    def update_settings(self, changes: Mapping[str, Any]) -> Settings:
        """Validate every change first (nothing applies if one is bad), then apply to the running router and save."""
        parsed = {name: parse_value(name, value) for name, value in changes.items()}
        with self._settings_lock:
            settings = self._settings
            for name, value in parsed.items():
                settings = settings.with_value(name, value)
            return self._apply(settings, parsed)

    def reset_setting(self, name: str) -> Settings:
        with self._settings_lock:
            settings = self._settings.without_override(name)
            settings = self._apply(settings, {name: settings[name]}, save=False)
            self.history.delete_setting(name)  # last: only once the running router took the change
            return settings

    def _apply(self, settings: Settings, changed: Mapping[str, Any], *, save: bool = True) -> Settings:
        """Apply to the running router, then adopt and save; the caller holds ``_settings_lock`` from
        reading the settings ``settings`` was made from. Nodes go first: they are the part that can
        fail (a URL already served by a discovered node), and then nothing else has changed.
        The lock is held across the router's add_node/remove_node, which start and stop a node's
        threads (they send no request themselves), and across the saves, so saved and running agree."""
        previous = self._settings
        if "SOLLOL_NODES" in changed:
            node_changes.sync_nodes(self.router, previous.nodes, settings.nodes)
        router_changes = {_ROUTER_FIELDS[n]: v for n, v in changed.items() if n in _ROUTER_FIELDS}
        if router_changes:
            self.router.update_config(**router_changes)
        self._settings = settings
        if _TIER_SETTINGS & set(changed):
            self.router.set_tiers(self._tiers())
        if save:
            for name in changed:
                self.history.save_setting(name, settings.as_text(name))
        return settings

    # --- tasks ---

    def assess(self, prompt: str, task_type: str | None = None) -> reasoning.Assessment:
        return reasoning.assess(prompt, task_type, reasoning.ReasoningSettings.from_settings(self._settings))

    def submit(self, prompt: str = "", *, task_type: str | None = None, model: str | None = None,
               mode: str | None = None, priority: int = 5, max_tokens: int | None = None,
               think: bool | str | None = None, messages: list[dict[str, Any]] | None = None,
               source: str = DEFAULT_SOURCE, **task_fields: Any) -> TaskHandle:
        """Submit one task; returns once history has its row, while it is already on its way to a node.
        The prompt is classified here, once (the Router then trusts ``task_type``), because the reasoning
        engine needs the type too; the reasoning engine decides thinking and its budget. ``source`` says
        where the task came from (task_counts.SOURCES), for /metrics."""
        return self._intake.submit(prompt, task_type=task_type, model=model, mode=mode, priority=priority,
                                   max_tokens=max_tokens, think=think, messages=messages, source=source,
                                   **task_fields)

    async def asubmit(self, prompt: str = "", **fields: Any) -> TaskHandle:
        """``submit`` for an event loop (the gateway): the same task, checks and refusals, but the wait for
        its row takes no thread, so the rows of many waiting submits are committed together."""
        return await self._intake.asubmit(prompt, **fields)

    def embed(self, texts: str | list[str], *, model: str, mode: str | None = None, priority: int = 5,
              source: str = DEFAULT_SOURCE, **task_fields: Any) -> TaskHandle:
        """Submit an embedding task (``task_type`` "embedding"): ``texts`` to ``model`` on a node that has it,
        routed, recorded and failed over like any task; the vectors come in ``result().embeddings``. No
        classifier or reasoning engine: there is no prompt to read. ``task_fields``: truncate, dimensions,
        keep_alive, options, deadline."""
        return self._intake.embed(texts, model=model, mode=mode, priority=priority, source=source, **task_fields)

    def task_counts(self) -> dict[TaskKey, int]:
        """Every task that ended in this process, by node, model, mode, status and source."""
        return self._task_counts.copy()

    def history_health(self) -> HistoryHealth:
        """Whether history can write (new tasks are refused while it cannot), for the status and the pages."""
        return self.history.health

    def tasks(self, limit: int = 50) -> list[TaskHandle]:
        return self._intake.tasks(limit)

    def handle(self, task_id: str) -> TaskHandle | None:
        return self._intake.handle(task_id)

    def resubmit(self, task_id: str, source: str = DEFAULT_SOURCE) -> TaskHandle:
        return self._intake.resubmit(task_id, source)

    # --- cluster ---

    def snapshot(self) -> ClusterSnapshot:
        return self.router.snapshot()

    def decisions(self, limit: int = 100) -> list[RoutingDecision]:
        return self.router.decisions(limit)

    def models(self) -> list[str]:
        snapshot = self.router.snapshot()
        return sorted({m.name for n in snapshot.nodes if n.healthy for m in n.installed})

    # The two below read the router's cached node views, not the snapshot: the gateway asks them
    # for every request, on its event loop.

    def has_healthy_node(self) -> bool:
        return self.router.has_healthy_node()

    def has_model(self, name: str) -> bool:
        """Whether a healthy node has ``name`` installed (the exact name, tag included)."""
        return self.router.has_model(name)

    def node_specs(self) -> list[NodeSpec]:
        """Every node as declared, credentials in its URL included: for talking to the node, never to show."""
        return self.router.nodes()

    def refresh_models(self, node: str) -> None:
        """Have the node's model list fetched now (after a pull, delete, copy or create there)."""
        self.router.refresh_models(node)

    def poll_nodes(self, nodes: list[str], timeout: float) -> bool:
        """Have these nodes polled now and wait (bounded) for their answers (Router.poll_nodes)."""
        return self.router.poll_nodes(nodes, timeout)

    def add_node(self, url: str, *, name: str = "", max_model_b: float | None = None, gpu: bool | None = None,
                 vram_mb: int | None = None, slots: int = 2) -> NodeSpec:
        """Add a node to the running router and to the saved SOLLOL_NODES."""
        spec = NodeSpec(url=url, name=name.strip(), max_model_b=max_model_b, gpu=gpu, vram_mb=vram_mb, slots=slots)
        with self._settings_lock:
            taken = {n.name: n.url for n in self.router.nodes()}
            if spec.name in taken or spec.url in taken.values():
                raise ConfigError("node", url, "a name and URL not already in the cluster "
                                  f"(in use: {', '.join(f'{k}={redact_url(v)}' for k, v in taken.items())})")
            nodes = (*self._settings.nodes, spec)
            self._apply(self._settings.with_value("SOLLOL_NODES", nodes), {"SOLLOL_NODES": nodes})
        return spec

    def remove_node(self, name: str) -> None:
        """Remove a node; when it came from SOLLOL_NODES the removal is saved too."""
        with self._settings_lock:
            nodes = tuple(n for n in self._settings.nodes if n.name != name)
            if len(nodes) == len(self._settings.nodes):
                self.router.remove_node(name)  # discovered (localhost, OLLAMA_HOST, scan) or embedded: this run only
                return
            self._apply(self._settings.with_value("SOLLOL_NODES", nodes), {"SOLLOL_NODES": nodes})

    # A static method, as it was: "Add node" asks a URL before any service holds the node.
    test_node = staticmethod(node_changes.check_node_url)
