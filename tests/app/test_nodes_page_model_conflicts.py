"""The Nodes page says when nodes hold different builds of one model (their digests differ)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from apphelpers import texts, wait_healthy
from streamlit.testing.v1 import AppTest

from hydra.sim import NodeProfile, SimCluster, start_cluster
from hydra.sim.presets import model


def _node(name: str, revision: str) -> NodeProfile:
    return NodeProfile(name=name, ram_mb=16_384, max_model_b=9, models=[
        model("qwen3:8b", revision=revision), model("llama3.2:3b")])


@pytest.fixture
def split_cluster() -> Iterator[SimCluster]:
    """Two nodes that agree on llama3.2:3b and hold different builds of qwen3:8b."""
    with start_cluster([_node("north", ""), _node("south", "pulled-again")], time_scale=0.05) as cluster:
        yield cluster


def test_the_nodes_page_shows_a_model_whose_digest_differs_between_nodes(
        split_cluster: SimCluster, cluster_env: object, monkeypatch: pytest.MonkeyPatch, app: AppTest) -> None:
    monkeypatch.setenv("SOLLOL_NODES", split_cluster.sollol_nodes())
    app.switch_page("pages/1_Nodes.py").run()
    wait_healthy()
    app.run()
    assert not app.exception
    warnings = [w for w in texts(app, "warning") if "not the same model on every node" in w]
    assert len(warnings) == 1, texts(app, "warning")
    north = split_cluster["north"].profile.model("qwen3:8b")
    south = split_cluster["south"].profile.model("qwen3:8b")
    assert north is not None and south is not None and north.digest != south.digest
    assert "qwen3:8b" in warnings[0] and north.digest[:12] in warnings[0] and south.digest[:12] in warnings[0]
    assert "llama3.2:3b" not in warnings[0]


def test_no_warning_when_the_nodes_agree(cluster_env: object, app: AppTest) -> None:
    app.switch_page("pages/1_Nodes.py").run()
    wait_healthy()
    app.run()
    assert not app.exception
    assert not [w for w in texts(app, "warning") if "not the same model on every node" in w]
