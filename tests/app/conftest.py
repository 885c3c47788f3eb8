"""AppTest fixtures: a simulated seed cluster on 127.0.0.x and a fresh Hydra per test.

``st.cache_resource`` is process-wide, so every test clears it before and after:
the next page view then builds a Hydra from the environment this test set
(its own database, its own nodes), and the previous one is closed (on_release).
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import streamlit as st
from apphelpers import APP, RUN_TIMEOUT
from streamlit.testing.v1 import AppTest

from hydra.sim import start_cluster


@pytest.fixture(scope="session")
def sim_cluster() -> Iterator[object]:
    with start_cluster("seed", time_scale=0.05) as cluster:
        yield cluster


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_", "OLLAMA_")):
            monkeypatch.delenv(name)
    # Never a real Ollama on localhost, never the embedded model: only what the test sets.
    monkeypatch.setenv("HYDRA_EMBEDDED_NODE", "off")
    monkeypatch.setenv("HYDRA_GATEWAY_PORT", "0")  # the gateway has its own tests
    monkeypatch.setenv("SOLLOL_DISCOVER_LOCALHOST", "false")


@pytest.fixture
def fresh_hydra() -> Iterator[None]:
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def cluster_env(sim_cluster, tmp_path, monkeypatch, fresh_hydra) -> object:
    """The app's environment: the seed cluster, a database of this test's own."""
    _clean(monkeypatch)
    monkeypatch.setenv("SOLLOL_NODES", sim_cluster.sollol_nodes())
    monkeypatch.setenv("HYDRA_DB", str(tmp_path / "hydra.db"))
    return sim_cluster


@pytest.fixture
def empty_env(tmp_path, monkeypatch, fresh_hydra) -> None:
    """No node at all (and no embedded node): the app must explain what to do."""
    _clean(monkeypatch)
    monkeypatch.setenv("HYDRA_DB", str(tmp_path / "hydra.db"))


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
