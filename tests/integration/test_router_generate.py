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


IMAGE = "aGVsbG8="


def test_images_on_cluster8_go_to_the_vision_node_or_end_in_the_nodes_words(clusters, make_router) -> None:
    cluster = clusters("cluster8")
    router = make_router(cluster)
    seen = router.submit(Task(prompt="what is it?", model="llava:7b", images=[IMAGE], max_tokens=3)).result(timeout=30)
    assert (seen.status, seen.node) == (TaskStatus.DONE, "gpu-12g"), seen.error
    assert cluster["gpu-12g"].stats()["received"][-1]["images"] == 1
    # A text model on all eight nodes: refused on each it tries (never sent the image), and the task
    # ends with the node's own status and words however many attempts that took.
    blind = router.submit(Task(prompt="what is it?", model=MODEL, images=[IMAGE], max_tokens=3)).result(timeout=30)
    assert (blind.status, blind.failure) == (TaskStatus.FAILED, FailureKind.REJECTED)
    assert (blind.rejected_status, blind.rejected_message) == (400, f'"{MODEL}" does not support images')
    assert all(r.get("images", 0) == 0 for n in cluster for r in n.stats()["received"] if n.name != "gpu-12g")
    assert all(n.failures == 0 and n.circuit == "closed" for n in router.snapshot().nodes)
