"""The app's start: the embedded node (the real model) warms on a thread while Hydra already serves,
joins the router only once it answers, and never outlives a Hydra closed while it still loads."""
from __future__ import annotations

import os
import socket
import time

import pytest

from hydra.node.embedded import node_answers
from hydra.service import EMBEDDED_HOST, EMBEDDED_NAME, EMBEDDED_PORT, Hydra

pytestmark = pytest.mark.model
URL = f"http://{EMBEDDED_HOST}:{EMBEDDED_PORT}"


@pytest.fixture
def env(monkeypatch, tmp_path) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)
    with socket.socket() as s:
        if s.connect_ex((EMBEDDED_HOST, EMBEDDED_PORT)) == 0:
            pytest.skip(f"something already serves {URL}: nothing would warm")
    return {"HYDRA_DB": str(tmp_path / "hydra.db"), "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0",
            "HYDRA_EMBEDDED_NODE": "on"}


def test_start_returns_while_the_node_warms_and_it_joins_once_it_answers(env):
    hydra = Hydra.from_env(env).start(embedded_in_background=True)
    try:
        status = hydra.embedded_status
        # start() did not wait for the model: the node is still loading (or has just answered).
        assert status.phase in ("starting", "ready") and status.url == URL
        if status.phase == "starting":
            assert EMBEDDED_NAME not in {n.name for n in hydra.snapshot().nodes}  # never shown down while it loads
        deadline = time.monotonic() + 180
        while hydra.embedded_status.phase == "starting":
            assert time.monotonic() < deadline, "the embedded node did not answer within 180 s"
            time.sleep(0.1)
        assert hydra.embedded_status.phase == "ready", hydra.embedded_status.error
        # It joined answering (its first poll sees it healthy); tasks through it: test_embedded_service.py.
        while not any(n.name == EMBEDDED_NAME and n.healthy for n in hydra.snapshot().nodes):
            assert time.monotonic() < deadline, "the embedded node joined but never showed healthy"
            time.sleep(0.1)
    finally:
        hydra.close()
    assert not node_answers(URL, timeout=0.5)


def test_closing_while_the_node_still_loads_stops_it(env):
    hydra = Hydra.from_env(env).start(embedded_in_background=True)
    hydra.close()  # at once: the node's process is starting, or about to
    assert hydra.embedded_status.phase in ("starting", "failed")
    # Nothing may be left serving: not now, and not a moment later (a start that raced the close).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert not node_answers(URL, timeout=0.3)
        time.sleep(0.2)
