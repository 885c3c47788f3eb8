"""Ending things: close() racing a submit, close() joining the engine's threads, remove_node() releasing
what the node held."""
from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from hydra.sollol import FailureKind, ShutdownError, Task, TaskStatus
from hydra.sollol.client import NodeClient

CODE = "Write a Python function that merges two sorted lists"


def engine_threads_since(before: set[int | None]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("sollol-")]


def test_a_submit_that_passed_the_closed_check_while_close_ran_is_refused(seed, make_router):
    # The classifier runs inside submit, after its first look at the closed flag: hold it there
    # while close() runs to its end, then let the submit go on.
    classifying, closed = threading.Event(), threading.Event()

    def classify_slowly(text: str) -> str:
        classifying.set()
        assert closed.wait(10)
        return "general"

    router = make_router(seed, classify=classify_slowly)
    outcome: dict[str, Any] = {}

    def submit() -> None:
        try:
            outcome["handle"] = router.submit(Task(prompt=CODE, max_tokens=5))
        except ShutdownError as exc:
            outcome["refused"] = exc

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert classifying.wait(10), "the submit never reached the classifier"
    router.close()
    closed.set()
    submitter.join(10)
    assert not submitter.is_alive()
    if "handle" in outcome:  # admitted before close() listed the tasks: then close() ended it
        result = outcome["handle"].result(timeout=5)
        assert (result.status, result.failure) == (TaskStatus.FAILED, FailureKind.SHUTDOWN)
    else:
        assert "closed" in str(outcome["refused"])


def test_close_joins_the_workers_even_one_held_by_a_slow_listener(seed, make_router):
    before = {t.ident for t in threading.enumerate()}
    router = make_router(seed)
    threads = engine_threads_since(before)
    assert any(t.name.startswith("sollol-worker-") for t in threads)
    in_listener = threading.Event()

    def slow_listener(event) -> None:
        # "finished" of a done task is told in its worker's thread: a slow listener (a history
        # write, say) keeps that worker busy for a while after the task ended.
        if event.kind == "finished" and threading.current_thread().name.startswith("sollol-worker-"):
            in_listener.set()
            threading.Event().wait(1.0)

    router.subscribe(slow_listener)
    handle = router.submit(Task(prompt=CODE, max_tokens=5))
    assert handle.result(timeout=30).status is TaskStatus.DONE
    assert in_listener.wait(5)
    router.close()
    assert [t.name for t in threads if t.is_alive()] == []


def test_close_cuts_a_worker_blocked_on_a_hung_node_and_joins_it(seed, make_router, eventually):
    light = seed["light"]
    light.set_fault("hang")
    before = {t.ident for t in threading.enumerate()}
    router = make_router(seed.sollol_nodes().replace("slots=2", "slots=1"), first_token_timeout_s=60)
    threads = engine_threads_since(before)
    hung = router.submit(Task(prompt=CODE, model="llama3.2:3b", max_tokens=5))
    eventually(lambda: light.stats()["faults_applied"].get("hang") == 1, what="the request hanging on light")
    router.close()
    result = hung.result(timeout=1)
    assert (result.status, result.failure) == (TaskStatus.INTERRUPTED, FailureKind.INTERRUPTED)
    assert [t.name for t in threads if t.is_alive()] == []


def test_close_says_which_thread_did_not_end_in_time_and_leaves_it(seed, make_router, monkeypatch, caplog):
    monkeypatch.setattr("hydra.sollol.members.CLOSE_JOIN_S", 0.2)
    caplog.set_level(logging.WARNING, logger="hydra.sollol")
    router = make_router(seed)
    release, in_listener = threading.Event(), threading.Event()
    held: list[threading.Thread] = []

    def stuck_listener(event) -> None:
        if event.kind == "finished" and threading.current_thread().name.startswith("sollol-worker-"):
            held.append(threading.current_thread())
            in_listener.set()
            release.wait(10)

    router.subscribe(stuck_listener)
    router.submit(Task(prompt=CODE, max_tokens=5))
    assert in_listener.wait(30)
    try:
        router.close()  # returns after the bound although the worker is still held
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("still busy" in m and held[0].name in m for m in warnings), warnings
        assert held[0].is_alive()
    finally:
        release.set()
    held[0].join(5)
    assert not held[0].is_alive()  # it ends once its call returns


@pytest.fixture
def closed_clients(monkeypatch) -> list[str]:
    """Names of the nodes whose NodeClient was closed."""
    names: list[str] = []
    close = NodeClient.close

    def recording(self: NodeClient) -> None:
        names.append(self.spec.name)
        close(self)

    monkeypatch.setattr(NodeClient, "close", recording)
    return names


def test_remove_node_stops_its_monitor_and_workers_and_closes_its_client(seed, make_router, closed_clients,
                                                                         eventually):
    before = {t.ident for t in threading.enumerate()}
    router = make_router(seed)
    light = [t for t in engine_threads_since(before)
             if t.name == "sollol-monitor-light" or t.name.startswith("sollol-worker-light-")]
    assert len(light) == 3  # the monitor and a worker per slot
    member = router._members.get("light")
    assert member is not None
    router.remove_node("light")
    assert not next(t for t in light if t.name == "sollol-monitor-light").is_alive()  # joined
    for thread in light:
        thread.join(5)
    assert [t.name for t in light if t.is_alive()] == []
    eventually(lambda: "light" in closed_clients, timeout=5, what="light's client closed")
    member.stop()  # again: nothing more to end, nothing closed twice
    assert closed_clients == ["light"]
    assert [n.name for n in router.nodes()] == ["powerful"]


def test_a_task_running_on_a_removed_node_finishes_there_then_its_client_closes(seed, make_router, closed_clients,
                                                                              eventually):
    router = make_router(seed)
    handle = router.submit(Task(prompt=CODE, max_tokens=200))
    eventually(lambda: handle.view().node == "light" and handle.view().text, what="streaming from light")
    router.remove_node("light")
    result = handle.result(timeout=30)
    assert (result.status, result.node, result.failovers) == (TaskStatus.DONE, "light", 0)
    eventually(lambda: "light" in closed_clients, timeout=5, what="light's client closed")
    after = router.submit(Task(prompt=CODE, max_tokens=5)).result(timeout=30)
    assert (after.status, after.node) == (TaskStatus.DONE, "powerful")


def test_a_removed_nodes_client_closes_only_once_its_monitors_poll_under_way_has_ended(seed, make_router, eventually,
                                                                                      caplog):
    caplog.set_level(logging.DEBUG, logger="hydra.sollol")
    light = seed["light"]
    router = make_router(seed)
    member = router._members.get("light")
    assert member is not None
    closes: list[bool] = []  # for each close of light's client: had its monitor ended by then?
    close = member.client.close

    def recording() -> None:
        closes.append(member.monitor._ended)
        close()

    member.client.close = recording
    light.set_fault("hang", scope="all", delay_s=1.0)
    member.monitor.poke()
    eventually(lambda: light.stats()["faults_applied"].get("hang", 0) >= 1, what="a poll hanging on light")
    member.stop()  # its idle workers end at once; the poll is still waiting on the node
    router.remove_node("light")  # stops it again: that must not lose track of what is still to end
    eventually(lambda: closes, timeout=5, what="light's client closed")
    assert closes == [True]
    assert not [r.getMessage() for r in caplog.records if "unhealthy" in r.getMessage()]
