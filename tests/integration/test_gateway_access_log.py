"""The gateway's access log: one line per request on ``hydra.gateway.access``, with the node and model
of the task for generation requests, and never a body, a key or a query string."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from hydra.config import load_settings
from hydra.gateway import Gateway
from hydra.service import Hydra
from hydra.sim import SimCluster
from tests.integration.service_env import running_hydra

LOGGER = "hydra.gateway.access"
KEY = "k3y-never-logged"


@pytest.fixture
def hydra(seed: SimCluster, tmp_path: Path, eventually: Callable[..., Any]) -> Iterator[Hydra]:
    with running_hydra(seed, tmp_path, eventually) as service:
        yield service


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _one_line(caplog: pytest.LogCaptureFixture, eventually: Callable[..., Any], start: str) -> str:
    # a line is written once the answer's last byte is sent, which the client may see first
    return eventually(lambda: next((ln for ln in _lines(caplog) if ln.startswith(start)), None), timeout=5,
                      what=f"an access-log line starting {start!r}")


def test_a_generation_line_names_the_tasks_node_and_model(hydra: Hydra, caplog: pytest.LogCaptureFixture,
                                                         eventually: Callable[..., Any]) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Gateway(hydra, port=0) as gw:
        body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "a secret prompt"}],
                "options": {"num_predict": 4}}
        with httpx.stream("POST", f"{gw.url}/api/chat", json=body) as reply:
            final = json.loads(list(reply.iter_lines())[-1])
        node = final["hydra"]["nodes"][-1]  # the node that finished the task
        line = _one_line(caplog, eventually, "POST /api/chat ")
        method, path, status, duration, node_field, model_field = line.split(" ")
        assert (method, path, status) == ("POST", "/api/chat", "200")
        assert duration.endswith("ms") and float(duration.removesuffix("ms")) > 0
        assert node_field == f"node={node}" and model_field == "model=llama3.2:3b"
        assert "secret prompt" not in "\n".join(_lines(caplog))


def test_every_request_gets_a_line_refusals_and_unknown_paths_too(
        hydra: Hydra, caplog: pytest.LogCaptureFixture, eventually: Callable[..., Any]) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Gateway(hydra, port=0, api_key=KEY) as gw:
        assert httpx.get(f"{gw.url}/api/tags").status_code == 401
        _one_line(caplog, eventually, "GET /api/tags 401 ")
        keyed = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{gw.url}/api/nothing-here?token={KEY}", headers=keyed).status_code == 404
        line = _one_line(caplog, eventually, "GET /api/nothing-here 404 ")
        assert line.endswith(" node=- model=-")
        assert httpx.post(f"{gw.url}/api/show", json={"model": "llama3.2:3b"}, headers=keyed).status_code == 200
        assert "model=llama3.2:3b" in _one_line(caplog, eventually, "POST /api/show 200 ")
        assert KEY not in "\n".join(_lines(caplog)) and "token" not in "\n".join(_lines(caplog))


def test_a_path_cannot_forge_a_line(hydra: Hydra, caplog: pytest.LogCaptureFixture,
                                    eventually: Callable[..., Any]) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Gateway(hydra, port=0) as gw:
        httpx.get(f"{gw.url}/x%0AGET%20/api/tags%20200")
        line = _one_line(caplog, eventually, "GET /x")
        assert "\n" not in line and line.split(" ")[2] == "404"


def test_model_management_lines_name_the_nodes(hydra: Hydra, caplog: pytest.LogCaptureFixture,
                                               eventually: Callable[..., Any]) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Gateway(hydra, port=0) as gw:
        ollama.Client(host=gw.url).copy("llama3.1:70b", "big:2")
        line = _one_line(caplog, eventually, "POST /api/copy 200 ")
        assert line.endswith(" node=powerful model=big:2")


def test_off_by_the_setting(hydra: Hydra, caplog: pytest.LogCaptureFixture) -> None:
    assert load_settings({"HYDRA_ACCESS_LOG": "0"}).access_log is False
    assert load_settings({}).access_log is True
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Gateway(hydra, port=0, access_log_on=False) as gw:
        assert httpx.get(f"{gw.url}/api/tags").status_code == 200
        assert httpx.get(f"{gw.url}/api/version").status_code == 200
    assert _lines(caplog) == []
