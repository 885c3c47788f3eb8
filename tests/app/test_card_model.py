"""A card names the model that ran (issue 14): a reasoning task whose assessment suggests qwen3:14b,
on a cluster where only qwen3:1.7b can take it, said "model qwen3:14b" while qwen3:1.7b ran."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from apphelpers import wait_healthy, wait_until

from hydra.sim import NodeProfile, start_cluster
from hydra.sim.presets import models
from hydra.sollol.types import TaskStatus
from hydra.ui.shared import get_hydra

PROOF = "Prove step by step that there are infinitely many primes, and explain why each step holds."


@pytest.fixture
def small_cluster(monkeypatch: pytest.MonkeyPatch, cluster_env: object) -> Iterator[object]:
    """One CPU node without the reasoning model: the reasoning list's second entry runs."""
    small = NodeProfile(name="small", gpu=False, ram_mb=16_384, max_model_b=8, slots=2,
                        models=models("qwen3:1.7b", "llama3.2:3b"))
    with start_cluster([small], time_scale=0.05) as cluster:
        monkeypatch.setenv("SOLLOL_NODES", cluster.sollol_nodes())
        yield cluster


def test_the_card_names_the_model_that_ran_not_the_suggested_one(small_cluster, app):
    app.run()
    wait_healthy(count=1)
    hydra = get_hydra()
    assert hydra.assess(PROOF).model_override == "qwen3:14b"  # the reasoning engine suggests the big model
    handle = hydra.submit(PROOF, max_tokens=16, think=False, source="ui")
    result = handle.result(timeout=30)
    assert result.status is TaskStatus.DONE and result.model == "qwen3:1.7b"
    def captions_of(at) -> list[str]:  # as the reader sees them: Markdown escapes taken out
        return [c.value.replace("\\", "") for c in at.caption]
    wait_until(app, lambda at: any("qwen3:1.7b" in c for c in captions_of(at)))
    captions = captions_of(app)
    meta = [c for c in captions if ":material/neurology:" in c]
    assert meta and all("qwen3:1.7b" in c and "qwen3:14b" not in c for c in meta), meta
    reasoning = [c for c in captions if "Reasoning" in c]
    assert reasoning and all("model qwen3:14b" not in c for c in reasoning), reasoning
    assert any("suggested qwen3:14b" in c for c in reasoning), reasoning
