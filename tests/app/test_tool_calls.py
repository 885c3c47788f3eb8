"""A task a gateway client sent with tools shows the model's tool calls in its card."""
from __future__ import annotations

from apphelpers import answers, wait_healthy, wait_until

from hydra.sollol.types import TaskStatus
from hydra.ui.shared import get_hydra

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"days": {"type": "integer"}},
                                                          "required": ["days"]}}}]


def test_a_task_with_tools_shows_its_calls(cluster_env, app):
    app.run()
    wait_healthy()
    handle = get_hydra().submit("What is the weather in Paris?", model="llama3.2:3b", tools=TOOLS, max_tokens=20)
    assert handle.result(timeout=30).status is TaskStatus.DONE
    wait_until(app, lambda at: "get_weather(days=1)" in answers(at).get(handle.id, ""))
    assert "No answer" not in answers(app)[handle.id]
