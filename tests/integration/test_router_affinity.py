"""Prefix-aware placement over simulated nodes (issue 15, item 5): a follow-up goes to the warm node
when it is free, elsewhere when the warm node's queue would make it finish later; a restart, an
eviction or a removal forgets that node's cache; the router keeps no prompt text for it."""
from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hydra.sim.testing import profile
from hydra.sollol import Router, RoutingMode, Task, TaskResult, TaskStatus
from hydra.sollol.prompt_blocks import prompt_blocks

pytestmark = pytest.mark.timeout(90)
SMALL = "qwen2.5-coder:1.5b"
SECRET = "ocelot-4471"


def history(words: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You review code."},
            {"role": "user", "content": f"{SECRET} please review: " + " ".join(f"line{i}" for i in range(words))}]


def follow_up(messages: list[dict[str, str]], answer: TaskResult, question: str = "and then?") -> list[dict[str, str]]:
    return [*messages, {"role": "assistant", "content": answer.text}, {"role": "user", "content": question}]


def ask(router: Router, messages: list[dict[str, str]], max_tokens: int = 20) -> TaskResult:
    result = router.submit(Task(messages=messages, model=SMALL, max_tokens=max_tokens)).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    return result


def cached_on(router: Router, messages: list[dict[str, str]]) -> dict[str, int]:
    """What the router's record says each node holds of this prompt (the engine's own object, read)."""
    found = router._attempts.prefix.lookup(prompt_blocks(messages))
    return {node: tokens for (node, _model), tokens in found.hits.items()}


@pytest.fixture
def pair(clusters: Callable[..., Any], make_router: Callable[..., Router], eventually: Callable[..., Any]):
    """Two identical CPU nodes ``a`` and ``b`` (one slot each) and a fast-mode router over them."""
    cluster = clusters([profile("a", slots=1, models=(SMALL,)), profile("b", slots=1, models=(SMALL,))])
    router = make_router(cluster, tiers=None, default_mode=RoutingMode.FAST)
    eventually(lambda: len(router.snapshot().healthy_nodes) == 2, what="both nodes healthy")
    return cluster, router


def test_a_follow_up_goes_to_the_warm_node_when_it_is_free(pair):
    _cluster, router = pair
    messages = history(1500)
    first = ask(router, messages)
    warm = first.node
    assert warm is not None
    follow = follow_up(messages, first)
    # The record holds the answer too, as the client sends it back (one string), not only the prompt.
    assert cached_on(router, follow).get(warm) == prompt_blocks(follow[:-1]).tokens
    second = ask(router, follow)
    assert second.node == warm
    assert f"prompt tokens cached on {warm}" in second.decision.reason
    other = next(c for c in second.decision.candidates if c.node != warm)
    assert "cached" not in other.reason
    # The node reused its cache: the follow-up's first token came far sooner than the first turn's.
    assert second.ttft_s is not None and first.ttft_s is not None and second.ttft_s < first.ttft_s / 2
    stats = router.snapshot().prefix_cache
    assert stats is not None and stats.enabled and stats.hits == 1 and stats.prefill_saved_s > 0


def test_a_follow_up_goes_elsewhere_when_the_warm_nodes_queue_would_make_it_finish_later(pair, eventually):
    _cluster, router = pair
    messages = history(250)
    first = ask(router, messages)
    warm = first.node
    cold = "b" if warm == "a" else "a"
    # A long answer of the same conversation takes the warm node's one slot.
    blocker = router.submit(Task(messages=follow_up(messages, first, "rewrite it all"), model=SMALL, max_tokens=4000))
    eventually(lambda: blocker.view().status is TaskStatus.RUNNING, what="the long answer running")
    assert blocker.view().node == warm
    quick = ask(router, follow_up(messages, first, "one more thing"), max_tokens=400)
    assert quick.node == cold
    assert blocker.view().status is TaskStatus.RUNNING  # it did finish sooner than waiting would have
    busy = next(c for c in quick.decision.candidates if c.node == warm)
    assert "busy (1/1 slots)" in busy.reason and f"cached on {warm}" in busy.reason
    blocker.cancel()


@pytest.mark.parametrize("lose", ["restart", "unload", "remove"])
def test_a_node_that_lost_its_cache_is_forgotten(pair, eventually, lose):
    cluster, router = pair
    messages = history(800)
    first = ask(router, messages)
    warm = first.node
    assert warm is not None
    follow = follow_up(messages, first)
    assert warm in cached_on(router, follow)
    node = cluster[warm]
    if lose == "restart":
        node.restart()
    elif lose == "unload":
        response = httpx.post(f"{node.url}/api/generate", json={"model": SMALL, "keep_alive": 0}, timeout=10)
        assert response.status_code == 200
    else:
        router.remove_node(warm)
    eventually(lambda: warm not in cached_on(router, follow), timeout=10, what=f"the record of {warm} forgotten")
    if lose == "remove":
        stats = router.snapshot().prefix_cache
        assert stats is not None and warm not in {n.node for n in stats.nodes}
    else:
        result = ask(router, follow)
        assert "cached" not in result.decision.reason


def test_affinity_off_ignores_the_caches(clusters, make_router, eventually):
    cluster = clusters([profile("a", slots=1, models=(SMALL,)), profile("b", slots=1, models=(SMALL,))])
    router = make_router(cluster, tiers=None, default_mode=RoutingMode.FAST, prefix_affinity=False)
    eventually(lambda: len(router.snapshot().healthy_nodes) == 2, what="both nodes healthy")
    messages = history(800)
    first = ask(router, messages)
    second = ask(router, follow_up(messages, first))
    assert "cached" not in second.decision.reason
    stats = router.snapshot().prefix_cache
    assert stats is not None and not stats.enabled


def test_the_router_holds_no_prompt_text_for_its_record(pair):
    _cluster, router = pair
    messages = history(400)
    first = ask(router, messages)
    ask(router, follow_up(messages, first))
    record = router._attempts.prefix
    seen: set[int] = set()
    stack: list[object] = [record]
    while stack:  # everything the record reaches: hashes and counts, no text of any prompt or answer
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if isinstance(obj, str | bytes):
            assert SECRET not in str(obj) and "line1" not in str(obj) and first.text not in str(obj), obj
        stack.extend(gc.get_referents(obj))


def test_a_long_conversations_first_token_deadline_counts_its_whole_history(clusters, make_router, eventually):
    """The deadline once counted the last message only: a follow-up whose history takes ~13 s to read on a
    slow node (model loaded) timed out at the 10 s floor, though the node was working."""
    slow = profile("slow", slots=1, models=(SMALL,), prefill_mult=0.00127)
    cluster = clusters([slow])
    router = make_router(cluster, tiers=None, default_mode=RoutingMode.FAST, first_token_timeout_s=60.0)
    response = httpx.post(f"{cluster['slow'].url}/api/generate", json={"model": SMALL}, timeout=10)  # load it
    assert response.status_code == 200
    eventually(lambda: any(n.loaded for n in router.snapshot().nodes), what="the model loaded, as /api/ps says")
    messages = [{"role": "user", "content": " ".join(f"w{i % 10}" for i in range(2000))},   # ~2,600 tokens
                {"role": "assistant", "content": "noted"}, {"role": "user", "content": "go on"}]
    result = router.submit(Task(messages=messages, model=SMALL, max_tokens=5)).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    assert result.ttft_s is not None and result.ttft_s > 10.0  # it really took longer than the old deadline
