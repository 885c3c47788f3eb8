"""Thinking: the budget stops a long think and asks again for the answer; think only goes to thinking models."""
from __future__ import annotations

import pytest

from hydra.sollol import Task, TaskStatus

BUDGET = 50
SLACK = 16   # what may still arrive after the budget is reached


def chats(node) -> int:
    return int(node.stats()["requests"].get("/api/chat", 0))


@pytest.mark.parametrize("model, task_type", [("qwen3:1.7b", None), (None, "reasoning")],
                         ids=["explicit-qwen3", "reasoning-tier"])
def test_the_thinking_budget_cuts_a_long_think_and_still_answers(seed, make_router, model, task_type):
    router = make_router(seed)
    task = Task(prompt="Prove that there are infinitely many primes", model=model, task_type=task_type,
                think=True, thinking_budget=BUDGET, max_tokens=20, options={"sim_think_tokens": 5000})
    handle = router.submit(task)
    result = handle.result(timeout=30)
    assert result.status is TaskStatus.DONE, result.error
    assert result.model.startswith("qwen3:")
    assert 0 < result.thinking_tokens <= BUDGET + SLACK
    assert result.thinking and result.text.strip()
    assert result.text.startswith(f"[simulated {result.model} on {result.node}]")
    # The node was asked twice: the thinking stream (stopped at the budget), then the answer without thinking.
    assert chats(seed[result.node]) == 2
    chunks = list(handle.stream(timeout=5))
    assert sum(1 for c in chunks if c.thinking) == result.thinking_tokens
    first_text = next(i for i, c in enumerate(chunks) if c.text)
    assert all(not c.text for c in chunks[:first_text]) and all(not c.thinking for c in chunks[first_text:])


def test_a_short_think_within_the_budget_is_kept_whole(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(prompt="Is 91 prime?", model="qwen3:1.7b", think=True, thinking_budget=BUDGET,
                                max_tokens=10, options={"sim_think_tokens": 12})).result(timeout=30)
    assert result.status is TaskStatus.DONE
    assert result.thinking_tokens == 12 and result.text
    assert chats(seed[result.node]) == 1                 # no second request: the think ended by itself


@pytest.mark.parametrize("think", [True, "high"], ids=["true", "level"])
def test_think_is_never_sent_to_a_model_that_cannot_think(seed, make_router, think):
    router = make_router(seed)
    handles = [router.submit(Task(prompt=f"Tell me a story #{i}", model=m, think=think, max_tokens=10))
               for i, m in enumerate(["llama3.2:3b", "mistral:latest", "qwen2.5-coder:7b"])]
    for h in handles:
        result = h.result(timeout=30)
        # Ollama answers 400 when think goes to such a model; the task would fail over, then fail.
        assert (result.status, result.attempts, result.thinking) == (TaskStatus.DONE, 1, ""), result.error
    assert sum(n.stats()["failed"] for n in seed) == 0


def test_think_false_reaches_a_thinking_model(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(prompt="Prove it", model="qwen3:1.7b", think=False, max_tokens=10,
                                options={"sim_think_tokens": 30})).result(timeout=30)
    assert result.status is TaskStatus.DONE
    assert (result.thinking, result.thinking_tokens) == ("", 0)
