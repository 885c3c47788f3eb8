"""A gateway client that resends the whole conversation (as Open WebUI and the OpenAI SDK do) is placed
by what the nodes hold in cache, with no session id; /metrics, /api/hydra/status and the dashboard
show the hits and the prefill saved."""
from __future__ import annotations

import httpx
import ollama
import pytest

pytestmark = pytest.mark.timeout(90)
MODEL = "qwen2.5-coder:7b"   # on both seed nodes


def test_a_resent_conversation_finds_its_prefix_cached_and_the_gateway_says_so(seed_gateway) -> None:
    client = ollama.Client(host=seed_gateway.url, timeout=60)
    messages = [{"role": "user", "content": "Review this: " + " ".join(f"row{i}" for i in range(900))}]
    first = client.chat(model=MODEL, messages=messages, options={"num_predict": 8})
    messages += [{"role": "assistant", "content": first.message.content or ""},
                 {"role": "user", "content": "And the edge cases?"}]
    client.chat(model=MODEL, messages=messages, options={"num_predict": 8})
    status = httpx.get(seed_gateway.url + "/api/hydra/status", timeout=10).json()
    cache = status["prefix_cache"]
    assert cache["enabled"] is True and cache["requests"] == 2 and cache["hits"] == 1
    assert cache["cached_tokens"] > 0 and cache["prefill_saved_s"] > 0
    reasons = [d["reason"] for d in status["decisions"]]
    assert any("prompt tokens cached on" in r for r in reasons), reasons
    metrics = httpx.get(seed_gateway.url + "/metrics", timeout=10).text
    hits = {line.split("{")[1].split("}")[0]: float(line.split()[-1])
            for line in metrics.splitlines() if line.startswith("hydra_prefix_cache_hits_total{")}
    assert sum(hits.values()) == 1.0, metrics
    assert "hydra_prefix_cache_prefill_saved_seconds_total{" in metrics
    assert "hydra_prefix_cache_hit_ratio 0.5" in metrics and "hydra_prefix_affinity_enabled 1.0" in metrics


def test_the_dashboard_has_its_cache_panel(seed_gateway) -> None:
    page = httpx.get(seed_gateway.url + "/", headers={"accept": "text/html"}, timeout=10).text
    script = httpx.get(seed_gateway.url + "/dashboard/dashboard.js", timeout=10).text
    assert 'id="cache-summary"' in page and 'id="cache"' in page
    assert "renderCache(status.prefix_cache)" in script
