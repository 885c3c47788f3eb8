"""Cancelling, timing out or moving a task cuts its connection at once, even before the first token."""
from __future__ import annotations

from hydra.sollol import Task, TaskStatus


def test_cancel_while_the_node_hangs_frees_the_slot_at_once(seed, make_router, eventually):
    light = seed["light"]
    light.set_fault("hang")  # accepts the request, never sends a byte
    router = make_router(seed.sollol_nodes().replace("slots=2", "slots=1"), first_token_timeout_s=60)
    hung = router.submit(Task(prompt="Say hi", model="llama3.2:3b", max_tokens=5))
    eventually(lambda: light.stats()["faults_applied"].get("hang") == 1, what="the request hanging on light")
    assert hung.cancel()
    assert hung.result(timeout=1).status is TaskStatus.CANCELLED
    eventually(lambda: router.snapshot().node("light").in_flight == 0, timeout=2, what="light's slot freed")
    # light has one slot and one worker thread: the next task can only run there if the hung
    # connection was really cut (the first-token timeout is a minute away).
    light.clear_faults()
    nxt = router.submit(Task(prompt="Say hi again", model="llama3.2:3b", max_tokens=5))
    result = nxt.result(timeout=10)
    assert result.status is TaskStatus.DONE and result.node == "light"


def test_first_token_timeout_frees_the_hung_node(seed, make_router, eventually):
    light = seed["light"]
    light.set_fault("hang")
    router = make_router(seed, first_token_timeout_s=0.5)
    handle = router.submit(Task(prompt="Say hi", model="llama3.2:3b", max_tokens=5))
    result = handle.result(timeout=30)
    assert result.status is TaskStatus.DONE and result.node == "powerful"
    eventually(lambda: router.snapshot().node("light").in_flight == 0, timeout=2, what="light's slot freed")
