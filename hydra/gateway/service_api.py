"""What the gateway needs of the service, and nothing more.

``hydra.service.Hydra`` is the one implementation; the gateway depends on this
Protocol instead of on the class (or on the Router behind it), so a reader sees
in one place every call the gateway makes into the rest of Hydra, and a test
can stand in a small fake.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from hydra.batch import BatchManager
from hydra.history import HistoryHealth
from hydra.sollol import ClusterSnapshot, NodeSpec, RoutingDecision, TaskHandle
from hydra.task_counts import TaskKey


class GatewayService(Protocol):
    """The service the gateway submits to and reads the cluster from."""

    def submit(self, prompt: str = "", *, task_type: str | None = None, model: str | None = None,
               mode: str | None = None, priority: int = 5, max_tokens: int | None = None,
               think: bool | str | None = None, messages: list[dict[str, Any]] | None = None,
               source: str = "api", **task_fields: Any) -> TaskHandle:
        """Submit one task (it blocks until history has the task's row); refusals raise HydraError.
        ``source`` says where it came from (the gateway says "gateway")."""
        ...

    def task_counts(self) -> Mapping[TaskKey, int]:
        """Every task that ended in the service, by node, model, mode, status and source (for /metrics)."""
        ...

    def embed(self, texts: str | list[str], *, model: str, mode: str | None = None, priority: int = 5,
              source: str = "api", **task_fields: Any) -> TaskHandle:
        """Submit one embedding task (its vectors in ``result().embeddings``); refusals raise HydraError."""
        ...

    async def asubmit(self, prompt: str = "", **fields: Any) -> TaskHandle:
        """``submit`` on the event loop: the wait for the task's row takes no thread."""
        ...

    def snapshot(self) -> ClusterSnapshot:
        """The whole cluster at one instant (nodes, queue, in-flight count, distribution)."""
        ...

    def history_health(self) -> HistoryHealth:
        """Whether history can write; while it cannot, submit refuses every task. Cheap: read per scrape."""
        ...

    def decisions(self, limit: int = 100) -> list[RoutingDecision]:
        """The latest routing decisions, newest first."""
        ...

    def models(self) -> list[str]:
        """Names of the models installed on at least one healthy node, sorted."""
        ...

    def has_healthy_node(self) -> bool:
        """Whether any node is healthy now. Cheap: called for every generation request."""
        ...

    def has_model(self, name: str) -> bool:
        """Whether a healthy node has ``name`` installed (exact name). Cheap: called for every request."""
        ...

    def node_specs(self) -> list[NodeSpec]:
        """Every node as declared, with the credentials in its URL: the model-management routes talk to
        the nodes with them. Never shown (answers and logs name nodes, and URLs only redacted)."""
        ...

    def refresh_models(self, node: str) -> None:
        """Have node ``node``'s model list fetched now, so routing sees a pull or a delete at once."""
        ...

    def poll_nodes(self, nodes: list[str], timeout: float) -> bool:
        """Poll these nodes now and wait, at most ``timeout`` s, for their answers (their /api/ps):
        blocking, so called off the event loop. False when one did not answer in time."""
        ...

    @property
    def batches(self) -> BatchManager:
        """The batch jobs (hydra/batch), for the OpenAI Batch API (batch_api.py)."""
        ...
