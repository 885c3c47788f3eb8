"""Hydra.resubmit sends the same request again: model, format, options, system, keep_alive, tools and all."""
from __future__ import annotations

from pathlib import Path

from hydra.service import Hydra
from hydra.sollol import TaskStatus

TOOLS = [{"type": "function", "function": {"name": "pick_colour", "description": "Pick a colour",
                                           "parameters": {"type": "object", "properties": {"hue": {"type": "string"}}}}}]


def test_resubmit_keeps_every_request_field(seed, tmp_path: Path, eventually) -> None:
    env = {"SOLLOL_NODES": seed.sollol_nodes(), "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off",
           "SOLLOL_DISCOVER_LOCALHOST": "false", "HYDRA_GATEWAY_PORT": "0"}
    hydra = Hydra.from_env(env, poll_interval_s=0.1).start()
    try:
        eventually(lambda: len(hydra.snapshot().healthy_nodes) == 2, what="both nodes healthy")
        schema = {"type": "object", "properties": {"colour": {"type": "string"}}}
        first = hydra.submit("Name a colour.", model="llama3.2:3b", max_tokens=9, format=schema,
                             options={"temperature": 0.2}, system="Answer in JSON.", keep_alive="1m", tools=TOOLS)
        assert first.result(timeout=30).status is TaskStatus.DONE
        again = hydra.resubmit(first.id)
        result = again.result(timeout=30)
        assert result.status is TaskStatus.DONE, result.error
        task = again.task
        assert (task.model, task.max_tokens, task.format, task.options, task.system, task.keep_alive, task.tools) == (
            "llama3.2:3b", 9, schema, {"temperature": 0.2}, "Answer in JSON.", "1m", TOOLS)
        assert result.tool_calls and result.tool_calls[0]["function"]["name"] == "pick_colour"
    finally:
        hydra.close()
