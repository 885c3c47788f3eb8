"""The Nodes page says what a node's answers taught the router: it refuses Hydra's credentials (401), it
asked to be left alone (429), it lacks a model its list shows (404)."""
from __future__ import annotations

import time

from apphelpers import texts, wait_healthy

from hydra.sollol.types import NodeSnapshot
from hydra.ui.cards import node_refusal_line
from hydra.ui.shared import get_hydra


def _node(**fields: object) -> NodeSnapshot:
    values: dict[str, object] = {
        "name": "n", "url": "http://127.0.0.9:11434", "healthy": True, "circuit": "closed", "last_error": None,
        "gpu": False, "local": False, "max_model_b": None, "slots": 2, "in_flight": 0, "vram_total_mb": None,
        "vram_used_mb": None, "vram_free_mb": None, "installed": (), "loaded": (), "version": "0.12.0",
        "last_seen": time.time(), "requests": 0, "successes": 0, "failures": 0, "success_rate": None,
        "ttft_p50_s": None, "ttft_p95_s": None, "tokens_per_s": None, **fields}
    return NodeSnapshot(**values)  # type: ignore[arg-type]


def test_the_refusal_line() -> None:
    now = time.time()
    assert node_refusal_line(_node(), now) == ""
    assert "Refuses Hydra's credentials" in node_refusal_line(_node(refuses_credentials="HTTP 401"), now)
    assert "Asked to back off (HTTP 429)" in node_refusal_line(_node(backed_off_until=now + 30), now)
    assert node_refusal_line(_node(backed_off_until=now - 1), now) == ""   # over: nothing to say
    assert "Said it lacks m:7b (HTTP 404)" in node_refusal_line(_node(missing_models=("m:7b",)), now)


def test_the_nodes_page_shows_a_node_refusing_hydras_credentials(cluster_env, app) -> None:
    app.run()
    wait_healthy()
    light = cluster_env["light"]
    light.set_fault("http_401")
    try:
        # The async mode's first choice is the CPU node, light: its 401 is learnt, the task runs elsewhere.
        result = get_hydra().submit("hello", model="qwen2.5-coder:1.5b", max_tokens=3).result(timeout=30)
        assert result.node == "powerful"
        app.switch_page("pages/1_Nodes.py").run()
        assert not app.exception
        assert any("Refuses Hydra's credentials" in w for w in texts(app, "warning"))
    finally:
        light.clear_faults()
