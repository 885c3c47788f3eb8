"""What the router is given: settings changed while it runs, tiers and a classifier (or none), and the
cheap questions a gateway asks of it for every request."""
from __future__ import annotations

import threading

from hydra.sollol import FailureKind, SollolConfig, Task, TaskStatus

CODE = "Write a Python function that merges two sorted lists"


def test_two_updates_at_once_keep_both_changes(seed, make_router, monkeypatch):
    router = make_router(seed)
    first_has_read, second_done = threading.Event(), threading.Event()
    replace = SollolConfig.replace

    def replace_slowly(self: SollolConfig, **changes):
        if "max_attempts" in changes:
            # The first update has read the settings: the second one runs now, if it can. Behind
            # a lock it cannot, and this wait ends at its bound.
            first_has_read.set()
            second_done.wait(1.0)
        return replace(self, **changes)

    monkeypatch.setattr(SollolConfig, "replace", replace_slowly)
    first = threading.Thread(target=router.update_config, kwargs={"max_attempts": 5})
    first.start()
    assert first_has_read.wait(5)

    def second_update() -> None:
        router.update_config(aging_s=3.0)
        second_done.set()

    second = threading.Thread(target=second_update)
    second.start()
    first.join(5)
    second.join(5)
    assert (router.config.max_attempts, router.config.aging_s) == (5, 3.0)


def test_without_tiers_a_task_that_names_no_model_fails_with_no_route(seed, make_router):
    router = make_router(seed, tiers=None)
    result = router.submit(Task(prompt=CODE, max_tokens=5)).result(timeout=5)
    assert (result.status, result.failure) == (TaskStatus.FAILED, FailureKind.NO_ROUTE)
    assert "name a model" in result.error.lower() and "tiers=" in result.error
    named = router.submit(Task(prompt=CODE, model="qwen2.5-coder:7b", max_tokens=5)).result(timeout=30)
    assert named.status is TaskStatus.DONE, named.error


def test_without_a_classifier_an_untyped_task_is_general(seed, make_router):
    router = make_router(seed, classify=None)
    untyped = router.submit(Task(prompt=CODE, max_tokens=5)).result(timeout=30)
    assert (untyped.status, untyped.task_type) == (TaskStatus.DONE, "general")
    typed = router.submit(Task(prompt=CODE, task_type="code", max_tokens=5)).result(timeout=30)
    assert typed.task_type == "code"


def test_the_classifier_given_types_untyped_tasks(seed, make_router):
    seen: list[str] = []

    def classify(text: str) -> str:
        seen.append(text)
        return "math"

    router = make_router(seed, classify=classify)
    result = router.submit(Task(messages=[{"role": "user", "content": "2 + 2?"}], max_tokens=5)).result(timeout=30)
    assert (result.task_type, seen) == ("math", ["2 + 2?"])


def test_has_model_and_has_healthy_node_see_only_healthy_nodes(seed, make_router, eventually):
    router = make_router(seed)
    assert router.has_healthy_node()
    assert router.has_model("qwen2.5-coder:7b") and not router.has_model("no-such-model:1b")
    seed["light"].kill()
    seed["powerful"].kill()
    eventually(lambda: not router.has_healthy_node(), what="both nodes seen down")
    assert not router.has_model("qwen2.5-coder:7b")
