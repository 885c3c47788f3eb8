"""Tool calling through the Router: tools reach the node, the model's calls come back in the result
and the stream, and the tool's result sent back gets a text answer (simulated nodes, real HTTP)."""
from __future__ import annotations

import pytest
from toolspecs import ASK, CLOCK, WEATHER

from hydra.sollol import Task, TaskError, TaskStatus
from hydra.sollol.handle import TaskState
from hydra.sollol.types import RoutingMode


def test_a_task_with_tools_gets_the_first_tools_call(seed, make_router):
    router = make_router(seed)
    handle = router.submit(Task(messages=ASK, model="llama3.2:3b", tools=[WEATHER, CLOCK]))
    result = handle.result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    assert result.text == ""
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]["function"]
    assert call["name"] == "get_weather"
    assert set(call["arguments"]) == {"city", "days"}
    assert isinstance(call["arguments"]["city"], str) and call["arguments"]["days"] == 1
    streamed = [c for c in handle.stream(timeout=5) if c.tool_calls]
    assert [c.tool_calls for c in streamed] == [result.tool_calls]
    assert streamed[0].text == "" and streamed[0].node == result.node
    assert result.ttft_s is not None  # the call alone is the first token


def test_the_tool_result_sent_back_gets_a_text_answer(seed, make_router):
    router = make_router(seed)
    first = router.submit(Task(messages=ASK, model="llama3.2:3b", tools=[WEATHER])).result(timeout=60)
    assert first.tool_calls, first.error
    messages = ASK + [{"role": "assistant", "content": "", "tool_calls": list(first.tool_calls)},
                      {"role": "tool", "content": "Sunny, 21 degrees", "tool_name": "get_weather"}]
    second = router.submit(Task(messages=messages, model="llama3.2:3b", tools=[WEATHER])).result(timeout=60)
    assert second.status is TaskStatus.DONE, second.error
    assert second.tool_calls == ()
    assert second.text.startswith("[simulated llama3.2:3b")


def test_without_tools_there_are_no_calls(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(messages=ASK, model="llama3.2:3b", max_tokens=5)).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    assert result.tool_calls == () and result.text


@pytest.mark.parametrize("tools", ["get_weather", {"function": {}}, [1], ["get_weather"]])
def test_bad_tools_are_refused_with_the_reason(seed, make_router, tools):
    router = make_router(seed)
    with pytest.raises(TaskError, match="tools must be a list of tool objects"):
        router.submit(Task(prompt="Hello", tools=tools))


def test_calls_already_streamed_stop_a_failover_from_continuing():
    from hydra.sollol.attempts import cannot_continue

    state = TaskState(Task(prompt="hi", tools=[WEATHER]), RoutingMode.FAST, "general")
    call = {"function": {"name": "get_weather", "arguments": {"city": "a"}}}
    attempt = state.bind("light", "llama3.2:3b", None)  # type: ignore[arg-type]
    assert cannot_continue(state) == ""
    assert state.add(attempt, tool_calls=(call,))
    assert state.first_token_mono is not None
    # The calls stay (readers saw them): the task ends rather than make a second set (attempts.failed).
    assert "tool calls cannot be continued" in cannot_continue(state)
