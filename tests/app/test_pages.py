"""Every page renders against a live (simulated) cluster, an empty one, and a bad environment."""
from __future__ import annotations

import pytest
import streamlit as st
from apphelpers import APP, PAGES, RUN_TIMEOUT, texts, wait_healthy, wait_until
from streamlit.testing.v1 import AppTest

from hydra.service import EMBEDDED_HOST, EMBEDDED_PORT
from hydra.sim import SimNode, preset
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


def test_embedded_node_is_announced(cluster_env, app, monkeypatch):
    app.run()
    assert not any("embedded node" in t for t in texts(app, "info"))
    # An Ollama already answering at the embedded node's address is used as the embedded node
    # (here a simulated one: the real model's start is tests/e2e/test_startup.py's).
    try:
        stand_in = SimNode(preset("seed")[0], host=EMBEDDED_HOST, port=EMBEDDED_PORT, time_scale=0.05).start()
    except OSError:
        pytest.skip(f"{EMBEDDED_HOST}:{EMBEDDED_PORT} is in use (a real embedded node is running)")
    try:
        st.cache_resource.clear()
        monkeypatch.setenv("HYDRA_EMBEDDED_NODE", "on")
        fresh = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
        wait_until(fresh, lambda at: any("serving at" in t for t in texts(at, "info")))
        info = " ".join(texts(fresh, "info"))
        assert "SmolLM2-135M on llama.cpp" in info and "http://127.0.0.1:11435" in info
        assert "Settings" in info and "SOLLOL_NODES" in info   # how to add real nodes
        assert "embedded" in {n.name for n in get_hydra().snapshot().nodes}
    finally:
        st.cache_resource.clear()
        stand_in.stop()
