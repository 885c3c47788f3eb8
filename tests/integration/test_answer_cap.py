"""max_tokens bounds the answer, also when thinking gets its own room in num_predict."""
from __future__ import annotations

import pytest

from hydra.sollol import Task, TaskStatus


@pytest.mark.parametrize("think_tokens", [12, 200], ids=["short-think", "think-to-budget"])
def test_answer_never_exceeds_max_tokens_with_thinking(seed, make_router, think_tokens):
    router = make_router(seed)
    handle = router.submit(Task(prompt="Why is the sky blue? Explain.", model="qwen3:8b", think=True,
                                thinking_budget=40, max_tokens=10, options={"sim_think_tokens": think_tokens}))
    result = handle.result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    answer_tokens = sum(1 for c in handle.stream() if c.text)
    assert 1 <= answer_tokens <= 10
    assert 1 <= result.thinking_tokens <= 40
    assert result.eval_count == result.thinking_tokens + answer_tokens
    assert result.tokens_per_s and result.tokens_per_s > 0
