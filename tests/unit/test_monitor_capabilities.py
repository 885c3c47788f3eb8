"""The monitor learns each model's capabilities from /api/show: once per model and digest, a few a poll,
asking again after a failure; the listing is fetched again until every model's are known."""
from __future__ import annotations

from hydra.sollol.config import SollolConfig
from hydra.sollol.errors import NodeUnavailableError
from hydra.sollol.monitor import CAPABILITIES_PER_POLL, NodeMonitor
from hydra.sollol.node import NodeState
from hydra.sollol.types import LoadedModel, ModelInfo, NodeSpec

MODELS = CAPABILITIES_PER_POLL + 2


class _Node:
    """A node's answers, with the /api/show calls it was asked counted."""

    def __init__(self) -> None:
        self.digest = "d1"
        self.shown: list[str] = []
        self.failing: set[str] = set()
        self.tags_calls = 0

    def version(self) -> str:
        return "0.12.0"

    def ps(self) -> dict[str, LoadedModel]:
        return {}

    def tags(self) -> dict[str, ModelInfo]:
        self.tags_calls += 1
        return {f"m{i}:1b": ModelInfo(f"m{i}:1b", 1.0, 1, digest=self.digest) for i in range(MODELS)}

    def capabilities(self, model: str) -> list[str] | None:
        self.shown.append(model)
        if model in self.failing:
            raise NodeUnavailableError("show failed", node="n")
        return ["embedding"] if model == "m0:1b" else ["completion"]


def _poll(monitor: NodeMonitor) -> dict[str, tuple[str, ...] | None]:
    assert monitor.poll_once()
    return {m.name: m.capabilities for m in monitor.state.view().installed.values()}


def test_capabilities_are_learnt_a_few_a_poll_then_kept_until_the_digest_changes() -> None:
    node = _Node()
    config = SollolConfig(poll_interval_s=0.1)
    monitor = NodeMonitor(NodeState(NodeSpec(url="http://127.0.0.9:11434", name="n")), node,  # type: ignore[arg-type]
                          lambda: config, lambda _state: None)
    first = _poll(monitor)
    assert len(node.shown) == CAPABILITIES_PER_POLL
    assert sum(c is not None for c in first.values()) == CAPABILITIES_PER_POLL and first["m0:1b"] == ("embedding",)
    second = _poll(monitor)  # the listing is due again: the rest are asked
    assert len(node.shown) == MODELS and all(c is not None for c in second.values())
    assert second["m1:1b"] == ("completion",)
    tags_before = node.tags_calls
    _poll(monitor)
    assert len(node.shown) == MODELS and node.tags_calls == tags_before  # all known: neither asked again
    node.digest, node.failing = "d2", {"m1:1b"}  # pulled again: every model is asked again
    monitor.refresh_models()
    third = _poll(monitor)
    assert third["m0:1b"] == ("embedding",) and third["m1:1b"] is None  # the failure stops this poll's asking
    monitor.refresh_models()
    node.failing = set()
    assert _poll(monitor)["m1:1b"] == ("completion",)


class _ClosedUnderIt(_Node):
    """A node whose client was closed while the poll ran (a router closing): every call fails."""

    def ps(self) -> dict[str, LoadedModel]:
        raise NodeUnavailableError("dropped the connection on /api/ps ([Errno 9] Bad file descriptor)", node="n")


def test_a_poll_that_fails_while_the_router_closes_says_nothing_of_the_node(caplog) -> None:
    changes: list[NodeState] = []
    config = SollolConfig(poll_interval_s=0.1)
    monitor = NodeMonitor(NodeState(NodeSpec(url="http://127.0.0.9:11434", name="n")), _ClosedUnderIt(),  # type: ignore[arg-type]
                          lambda: config, changes.append)
    monitor.stop()
    with caplog.at_level("WARNING", logger="hydra.sollol"):
        assert monitor.poll_once() is False
    assert not [r for r in caplog.records if "unhealthy" in r.getMessage()] and not changes
    # The same failure before a close is the node's: it is said.
    live = NodeMonitor(NodeState(NodeSpec(url="http://127.0.0.9:11434", name="n")), _ClosedUnderIt(),  # type: ignore[arg-type]
                       lambda: config, changes.append)
    with caplog.at_level("WARNING", logger="hydra.sollol"):
        assert live.poll_once() is False
    assert [r for r in caplog.records if "node n is unhealthy" in r.getMessage()] and changes
