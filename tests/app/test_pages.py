"""Every page renders against a live (simulated) cluster, an empty one, and a bad environment."""
from __future__ import annotations

import pytest
from apphelpers import PAGES, texts, wait_healthy

from hydra.ui.shared import get_hydra

TITLES = {"pages/1_Nodes.py": "Nodes", "pages/2_Distribution.py": "Distribution",
          "pages/3_Reasoning.py": "Reasoning", "pages/4_Settings.py": "Settings"}


def test_every_page_renders(cluster_env, app):
    app.run()
    assert not app.exception
    assert texts(app, "title") == ["Tasks"]
    wait_healthy()
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)
        assert texts(app, "title") == [TITLES[page]], page
        assert not app.error, (page, texts(app, "error"))


def test_nodes_page_shows_each_node(cluster_env, app):
    app.run()
    wait_healthy()
    app.switch_page("pages/1_Nodes.py").run()
    body = "\n".join(texts(app) + texts(app, "caption"))
    assert "#### light" in body and "#### powerful" in body
    assert "CPU only" in body and "GPU" in body
    assert "CPU-only node" in body          # said plainly, not as a warning
    assert not app.warning
    assert any(t.startswith(":material/update: Last refreshed ") for t in texts(app, "caption"))
    assert any("VRAM" in (p.proto.text or "") for p in app.get("progress"))


def test_no_node_is_explained(empty_env, app):
    app.run()
    assert not app.exception
    warning = " ".join(texts(app, "warning"))
    assert "No node is configured" in warning
    assert "SOLLOL_NODES" in warning and "127.0.0.1" in warning and "Settings" in warning
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)
    assert get_hydra().snapshot().nodes == ()


def test_distribution_empty_state(cluster_env, app):
    app.run()
    app.switch_page("pages/2_Distribution.py").run()
    assert any("No requests in this window yet" in t for t in texts(app, "info"))
    assert any("No routing decisions recorded yet" in t for t in texts(app, "caption"))


@pytest.mark.parametrize("variable, value", [("SOLLOL_MAX_CONCURRENT_REQUESTS", "zero"),
                                             ("SOLLOL_DEFAULT_ROUTING_MODE", "fastest")],
                         ids=["not-a-number", "unknown-mode"])
def test_bad_environment_is_explained_not_raised(cluster_env, app, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    app.run()
    assert not app.exception
    error = " ".join(texts(app, "error"))
    assert variable in error and value in error and "Allowed" in error and "Fix" in error
    assert not app.title  # the page stopped: nothing half-rendered


def test_embedded_node_is_announced(cluster_env, app):
    app.run()
    assert not any("embedded node" in t for t in texts(app, "info"))
    get_hydra().embedded_url = "http://127.0.0.1:11435"   # what Hydra sets when it starts the embedded node
    app.run()
    info = " ".join(texts(app, "info"))
    assert "SmolLM2-135M on llama.cpp" in info and "http://127.0.0.1:11435" in info
    assert "Settings" in info and "SOLLOL_NODES" in info   # how to add real nodes
