"""Generate tasks through the Router over the seed (real HTTP): on the node's /api/generate with
every field, failing over with them before the first token, and never continued after one (a raw
prompt, a suffix or a context has no chat turn to go on from); the context comes back."""
from __future__ import annotations

from hydra.sollol import Task, TaskStatus
from hydra.sollol.types import FailureKind

MODEL = "llama3.2:3b"


def test_a_generate_task_fails_over_with_every_field(seed, make_router) -> None:
    router = make_router(seed)
    seed["light"].set_fault("http_500", count=1)  # async mode tries the CPU node first
    task = Task(prompt="def f(x):", model=MODEL, mode="async", max_tokens=5, suffix="    return y", raw=True,
                template="{{ .Prompt }}", context=[3, 4])
    result = router.submit(task).result(timeout=30)
    assert (result.status, result.node, result.failovers) == (TaskStatus.DONE, "powerful", 1), result.error
    sent = seed["powerful"].stats()["received"][-1]
    assert sent["route"] == "generate" and sent["generate"] == {"suffix": "    return y", "raw": True,
                                                                "template": "{{ .Prompt }}", "context": [3, 4]}
    assert sent["num_predict"] == 5
    assert result.context is not None and result.context[:2] == (3, 4) and result.eval_count == 5


def test_a_generate_answer_is_not_continued_on_another_node(seed, make_router) -> None:
    router = make_router(seed)
    seed["light"].set_fault("error_midstream", count=1, after_chunks=3)
    result = router.submit(Task(prompt="go on", model=MODEL, mode="async", max_tokens=10, raw=True)).result(timeout=30)
    assert (result.status, result.failure) == (TaskStatus.FAILED, FailureKind.NODE_FAILED)
    assert "cannot be continued on another node" in (result.error or "")
    assert len(result.text.split()) == 3 and seed["powerful"].stats()["received"] == []


def test_a_plain_prompt_still_goes_through_chat(seed, make_router) -> None:
    router = make_router(seed)
    result = router.submit(Task(prompt="hello", model=MODEL, max_tokens=3)).result(timeout=30)
    assert result.status is TaskStatus.DONE and result.context is None
    node = seed[result.node]
    assert "route" not in node.stats()["received"][-1]  # a chat
