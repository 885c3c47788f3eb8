"""An attempt that ends by an exception that is not a NodeError: the worker survives, the task ends at
once with a classified failure, and no node is charged for it.

Before, such an exception escaped ``NodeWorkers.execute``: the task waited for the watchdog's
first-token timeout, which then charged the node (and three such tasks opened its breaker)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from hydra.sim import SimCluster
from hydra.sollol import FailureKind, Router, Task, TaskStatus
from hydra.sollol.worker import NodeWorkers

MODEL = "llama3.2:3b"
# A tool both Task.validate and the gateway accept (parameters is an object), which the ollama client's
# own model refuses (its Tool.parameters.type allows only "object"): its pydantic ValidationError.
UNSENDABLE_TOOL = {"type": "function", "function": {"name": "pick", "parameters": {"type": "array"}}}
ENDS_WITHIN_S = 3.0   # the router_config fixture's first-token timeout is 5 s: a hang would show


def assert_no_node_charged(router: Router) -> None:
    for node in router.snapshot().nodes:
        assert node.circuit == "closed" and node.healthy, (node.name, node.circuit, node.last_error)
        assert node.failures == 0, (node.name, node.failures, node.last_error)


def test_a_request_the_client_library_refuses_ends_rejected_at_once_on_one_node(
        seed: SimCluster, make_router: Callable[..., Router]) -> None:
    router = make_router(seed)
    for _ in range(3):  # three used to open the breaker of the node they ran on
        result = router.submit(Task(prompt="pick one", model=MODEL, tools=[UNSENDABLE_TOOL],
                                    max_tokens=4)).result(timeout=ENDS_WITHIN_S)
        assert (result.status, result.failure) == (TaskStatus.FAILED, FailureKind.REJECTED), result.error
        assert result.attempts == 1  # every node would refuse it alike: no failover
        assert "client library refused" in (result.error or "") and "ValidationError" in (result.error or "")
    assert_no_node_charged(router)
    after = router.submit(Task(prompt="hello", model=MODEL, max_tokens=4)).result(timeout=30)
    assert after.status is TaskStatus.DONE, after.error


def test_a_crash_in_hydras_own_attempt_code_ends_the_task_internal_and_the_worker_lives_on(
        seed: SimCluster, make_router: Callable[..., Router], monkeypatch: pytest.MonkeyPatch) -> None:
    original = NodeWorkers._take
    crashes = []

    def crash_once(self: NodeWorkers, *args: Any) -> Any:
        if not crashes:
            crashes.append(self.node.name)
            raise RuntimeError("a defect in the worker")
        return original(self, *args)

    monkeypatch.setattr(NodeWorkers, "_take", crash_once)
    router = make_router(seed)
    threads = {t.name for t in threading.enumerate() if t.name.startswith("sollol-worker-")}
    result = router.submit(Task(prompt="hello", model=MODEL, max_tokens=4)).result(timeout=ENDS_WITHIN_S)
    assert (result.status, result.failure) == (TaskStatus.FAILED, FailureKind.INTERNAL), result.error
    assert "defect in Hydra" in (result.error or "") and "RuntimeError: a defect in the worker" in (result.error or "")
    assert result.attempts == 1
    assert_no_node_charged(router)
    # every worker thread still runs, and serves the next tasks
    alive = {t.name for t in threading.enumerate() if t.name.startswith("sollol-worker-")}
    assert threads <= alive
    for _ in range(4):
        after = router.submit(Task(prompt="hello again", model=MODEL, max_tokens=4)).result(timeout=30)
        assert after.status is TaskStatus.DONE, after.error
