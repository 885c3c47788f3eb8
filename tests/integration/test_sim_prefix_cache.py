"""The simulator's KV cache against its rule (hydra/sim/prefix_cache.py): per slot the last sequence;
prefill charged only for the uncached part at the model's prefill speed; eviction, unload and
restart lose it. Real HTTP through the ollama client."""
from __future__ import annotations

import ollama
import pytest

from hydra.sim import SimNode, prefix_cache, textgen
from hydra.sim.testing import profile

pytestmark = pytest.mark.timeout(60)
SMALL, SEVEN = "qwen2.5-coder:1.5b", "qwen2.5-coder:7b"


def tokens(*texts: str) -> int:
    return sum(textgen.prompt_token_count([t], 1) for t in texts)


def chat(node: SimNode, messages: list[dict[str, str]], model: str = SMALL, **kw: object) -> ollama.ChatResponse:
    return ollama.Client(host=node.url, timeout=20).chat(model=model, messages=messages, stream=False,
                                                         options={"num_predict": 5}, **kw)


def prefill_charged(node: SimNode, reply: ollama.ChatResponse, model: str = SMALL) -> float:
    """Tokens the node evaluated, from the time it charged for them (prompt_eval_duration)."""
    speed = node.profile.prefill_tps(node.profile.model(model))  # type: ignore[arg-type]
    return (reply.prompt_eval_duration or 0) / 1e9 * speed


def test_a_follow_up_pays_prefill_for_its_new_message_only(sim_node_factory):
    node = sim_node_factory(profile("n", slots=2))
    question = "describe " + "the quick brown fox " * 60
    first = chat(node, [{"role": "user", "content": question}])
    assert prefill_charged(node, first) == pytest.approx(first.prompt_eval_count, abs=1)
    follow = [{"role": "user", "content": question}, {"role": "assistant", "content": first.message.content or ""},
              {"role": "user", "content": "and why?"}]
    second = chat(node, follow)
    cached = tokens(question, first.message.content or "")
    assert second.prompt_eval_count == textgen.prompt_token_count([m["content"] for m in follow], 3)  # the whole prompt
    assert prefill_charged(node, second) == pytest.approx(second.prompt_eval_count - cached, abs=1)


def test_the_final_line_reports_the_cached_tokens(sim_node_factory):
    import httpx
    node = sim_node_factory(profile("n", slots=1))
    body = {"model": SMALL, "stream": False, "options": {"num_predict": 3},
            "messages": [{"role": "user", "content": "long " * 200}]}
    first = httpx.post(f"{node.url}/api/chat", json=body, timeout=20).json()
    assert "prompt_eval_cached_count" not in first  # nothing cached: omitted, as Ollama omits an empty field
    body["messages"] = [*body["messages"], first["message"], {"role": "user", "content": "more"}]
    second = httpx.post(f"{node.url}/api/chat", json=body, timeout=20).json()
    assert second["prompt_eval_cached_count"] == tokens("long " * 200, first["message"]["content"])


def test_a_different_prompt_finds_nothing_cached(sim_node_factory):
    node = sim_node_factory(profile("n", slots=1))
    chat(node, [{"role": "user", "content": "first conversation " * 50}])
    other = chat(node, [{"role": "user", "content": "another conversation " * 50}])
    assert prefill_charged(node, other) == pytest.approx(other.prompt_eval_count, abs=1)


@pytest.mark.parametrize("slots, host_tokens, expected", [
    (2, 0, "cached"),        # each slot keeps its own conversation
    (1, 0, "evaluated"),     # one slot keeps only the last: a was overwritten by b
    (1, 100_000, "restored"),  # ... unless the host-memory prompt cache kept it (llama-server's --cache-ram)
])
def test_slots_and_the_host_cache_keep_conversations(sim_node_factory, slots, host_tokens, expected):
    node = sim_node_factory(profile("n", slots=slots, host_cache_tokens=host_tokens))
    a = [{"role": "user", "content": "conversation a " * 80}]
    b = [{"role": "user", "content": "conversation b " * 80}]
    answer_a = chat(node, a).message.content or ""
    chat(node, b)
    again = chat(node, [*a, {"role": "assistant", "content": answer_a}, {"role": "user", "content": "so?"}])
    full = again.prompt_eval_count or 0
    cached = tokens("conversation a " * 80, answer_a)
    charged = {"cached": full - cached, "evaluated": full,
               "restored": full - cached + cached / prefix_cache.RESTORE_SPEEDUP}[expected]
    assert prefill_charged(node, again) == pytest.approx(charged, abs=1)


def test_unload_eviction_and_restart_lose_the_cache(sim_node_factory):
    node = sim_node_factory(profile("n", slots=2, memory_mb=6_000, models=(SMALL, SEVEN)))
    question = [{"role": "user", "content": "keep this in cache " * 60}]
    client = ollama.Client(host=node.url, timeout=20)

    def warm_then(lose: object) -> float:
        answer = chat(node, question).message.content or ""
        if callable(lose):
            lose()
        follow = [*question, {"role": "assistant", "content": answer}, {"role": "user", "content": "next"}]
        reply = chat(node, follow)
        return prefill_charged(node, reply) / (reply.prompt_eval_count or 1)

    assert warm_then(None) < 0.2                                                    # kept
    assert warm_then(lambda: client.generate(model=SMALL, prompt="", keep_alive=0)) == pytest.approx(1.0, abs=0.02)
    assert warm_then(lambda: client.generate(model=SEVEN, prompt="x", options={"num_predict": 1})) == pytest.approx(
        1.0, abs=0.02)                                                               # the 7B evicted the 1.5B
    assert node.stats()["evictions"].get(SMALL, 0) >= 1
    assert warm_then(node.restart) == pytest.approx(1.0, abs=0.02)                   # a restart starts empty
