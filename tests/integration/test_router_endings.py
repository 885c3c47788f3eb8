"""Every way a task can end, and the FailureKind each end carries (None only when done)."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from hydra.sim import SimNode
from hydra.sim.testing import profile
from hydra.sollol import FailureKind, Router, Task, TaskHandle, TaskStatus

CODE = "Write a Python function that merges two sorted lists"
MODEL = "qwen2.5-coder:7b"


def solo(clusters, make_router, **config) -> tuple[SimNode, Router]:
    """One simulated node, so a failed attempt has nowhere else to go."""
    cluster = clusters([profile("solo", models=(MODEL,))])
    return cluster["solo"], make_router(cluster, **config)


def hanging(clusters, make_router, eventually, **config) -> tuple[Router, TaskHandle]:
    """A task running on a node that accepted it and never answers."""
    node, router = solo(clusters, make_router, first_token_timeout_s=60, **config)
    node.set_fault("hang")
    handle = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))
    eventually(lambda: node.stats()["faults_applied"].get("hang") == 1, what="the request hanging")
    return router, handle


def done(clusters, make_router, eventually) -> TaskHandle:
    _, router = solo(clusters, make_router)
    return router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))


def no_route(clusters, make_router, eventually) -> TaskHandle:
    _, router = solo(clusters, make_router)
    return router.submit(Task(prompt=CODE, model="no-such-model:1b", max_tokens=5))


def rejected(clusters, make_router, eventually) -> TaskHandle:
    node, router = solo(clusters, make_router)
    node.profile.models = []  # deleted after the router listed it: the node answers 404
    return router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))


def node_failed(clusters, make_router, eventually) -> TaskHandle:
    node, router = solo(clusters, make_router)
    node.set_fault("http_500")
    return router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))


def internal(clusters, make_router, eventually) -> TaskHandle:
    """A defect in Hydra's own attempt code (here: reading the stream raises)."""
    _, router = solo(clusters, make_router)

    def crash(*args: object) -> None:
        raise RuntimeError("a defect in the worker")

    router._members.get("solo").workers._take = crash  # this node's workers only
    return router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))


def deadline(clusters, make_router, eventually) -> TaskHandle:
    node, router = solo(clusters, make_router, first_token_timeout_s=60)
    node.set_fault("hang")
    return router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5, deadline=0.3))


def cancelled(clusters, make_router, eventually) -> TaskHandle:
    _, handle = hanging(clusters, make_router, eventually)
    assert handle.cancel()
    return handle


def interrupted(clusters, make_router, eventually) -> TaskHandle:
    router, handle = hanging(clusters, make_router, eventually)
    router.close()
    return handle


def shutdown(clusters, make_router, eventually) -> TaskHandle:
    router, _ = hanging(clusters, make_router, eventually, max_concurrent_requests=1)
    queued = router.submit(Task(prompt=CODE, model=MODEL, max_tokens=5))
    assert queued.status is TaskStatus.QUEUED
    router.close()
    return queued


ENDINGS: list[tuple[Callable[..., TaskHandle], TaskStatus, FailureKind | None]] = [
    (done, TaskStatus.DONE, None),
    (no_route, TaskStatus.FAILED, FailureKind.NO_ROUTE),
    (rejected, TaskStatus.FAILED, FailureKind.REJECTED),
    (node_failed, TaskStatus.FAILED, FailureKind.NODE_FAILED),
    (internal, TaskStatus.FAILED, FailureKind.INTERNAL),
    (deadline, TaskStatus.FAILED, FailureKind.DEADLINE),
    (cancelled, TaskStatus.CANCELLED, FailureKind.CANCELLED),
    (interrupted, TaskStatus.INTERRUPTED, FailureKind.INTERRUPTED),
    (shutdown, TaskStatus.FAILED, FailureKind.SHUTDOWN),
]


@pytest.mark.parametrize("end, status, failure", ENDINGS, ids=[e[0].__name__ for e in ENDINGS])
def test_each_end_carries_its_failure_kind(clusters, make_router, eventually, end, status, failure):
    handle = end(clusters, make_router, eventually)
    result = handle.result(timeout=30)
    assert (result.status, result.failure) == (status, failure), result.error
    assert (result.error is None) == (failure is None)


def test_every_kind_has_a_way_to_end_here():
    assert {f for _, _, f in ENDINGS} - {None} == set(FailureKind)
