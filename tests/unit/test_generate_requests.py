"""Issue 12, items 3 to 7, in pure functions: which requests go to /api/generate and with what, an
empty prompt as a load, the node's 4xx as the client's status, OpenAI's field table, n's merge and
the completions' logprobs."""
from __future__ import annotations

from typing import Any

import httpx
import ollama
import pytest

from hydra.gateway.choices import merge_choices
from hydra.gateway.openai_completions import completion_logprobs, completion_request
from hydra.gateway.openai_fields import CHAT_FIELDS, COMPLETION_FIELDS, HONOURED, NO_EFFECT, REFUSED, refuse_unsupported
from hydra.gateway.stream import failure_message, failure_status
from hydra.gateway.validate import ollama_request
from hydra.sollol.client import node_error_from
from hydra.sollol.errors import CapabilityMissingError, ModelNotFoundError, RequestRejectedError, TaskError
from hydra.sollol.generate import generate_arguments, has_images, uses_generate
from hydra.sollol.types import FailureKind, Task, TaskResult, TaskStatus
from hydra.sollol.validation import FieldError

IMAGE = "aGVsbG8="  # base64 of b"hello"


def generate(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": "hi", "stream": False, **fields}


@pytest.mark.parametrize("fields, expected", [
    ({"suffix": " end"}, {"suffix": " end"}),
    ({"raw": True, "template": "{{ .Prompt }}"}, {"raw": True, "template": "{{ .Prompt }}"}),
    ({"context": [1, 2]}, {"context": [1, 2]}),
    ({"images": [IMAGE]}, {"images": [IMAGE]}),
    ({"images": []}, {}),                       # no image: nothing for /api/generate to do
    ({"logprobs": True, "top_logprobs": 2}, {"logprobs": True, "top_logprobs": 2}),
])
def test_generate_fields_are_kept_for_the_task(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    checked = ollama_request(generate(**fields), chat=False)
    assert {k: v for k, v in checked.fields.items() if k in expected} == expected
    assert checked.load is None


@pytest.mark.parametrize("body, chat, load", [
    ({"model": "m", "prompt": ""}, False, "load"),
    ({"model": "m"}, False, "load"),
    ({"model": "m", "prompt": "", "keep_alive": 0}, False, "unload"),
    ({"model": "m", "prompt": "", "keep_alive": "0s"}, False, "unload"),
    ({"model": "m", "prompt": "", "keep_alive": "5m"}, False, "load"),
    ({"model": "m", "messages": []}, True, "load"),
    ({"model": "m"}, True, "load"),
    ({"model": "m", "messages": [], "keep_alive": 0}, True, "unload"),
])
def test_an_empty_prompt_or_no_messages_is_a_load(body: dict[str, Any], chat: bool, load: str) -> None:
    assert ollama_request(body, chat=chat).load == load


@pytest.mark.parametrize("fields, field", [
    ({"prompt": "  "}, "prompt"),
    ({"context": "1,2"}, "context"),
    ({"context": [1, -1]}, "context[1]"),
    ({"images": ["not base64!"]}, "images[0]"),
    ({"raw": "yes"}, "raw"),
    ({"top_logprobs": 2}, "top_logprobs"),       # without logprobs
    ({"logprobs": True, "stream": True}, "logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"prompt": "", "keep_alive": "forever"}, "keep_alive"),
])
def test_bad_generate_fields_are_refused_by_name(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as refused:
        ollama_request(generate(**fields), chat=False)
    assert refused.value.field == field


def test_which_tasks_run_on_generate_and_what_they_send() -> None:
    assert not uses_generate(Task(prompt="hi"))
    assert uses_generate(Task(prompt="hi", suffix="x")) and uses_generate(Task(prompt="hi", context=[]))
    task = Task(prompt="hi", system="be brief", raw=True, images=[IMAGE])
    task.validate()
    assert has_images(task) and has_images(Task(messages=[{"role": "user", "content": "x", "images": [IMAGE]}]))
    assert generate_arguments(task) == {"prompt": "hi", "system": "be brief", "raw": True, "images": [b"hello"]}


@pytest.mark.parametrize("task, words", [
    (Task(prompt="hi", context=[1, "2"]), "context[1]"),  # type: ignore[list-item]
    (Task(prompt="hi", top_logprobs=21), "top_logprobs"),
    (Task(prompt="hi", images=["@@"]), "images[0]"),
    (Task(messages=[{"role": "user", "content": "hi"}], suffix="x"), "not with messages"),
])
def test_task_validate_checks_the_generate_fields(task: Task, words: str) -> None:
    with pytest.raises(TaskError, match=words.replace("[", r"\[").replace("]", r"\]")):
        task.validate()


def _refusal(status: int, message: str) -> RequestRejectedError:
    request = httpx.Request("POST", "http://127.0.0.9:11434/api/chat")
    response = httpx.Response(status, json={"error": message}, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        try:
            raise ollama.ResponseError(exc.response.text, status) from None
        except ollama.ResponseError as error:
            mapped = node_error_from(error, "n", "http://127.0.0.9:11434", during="before the first token")
            assert isinstance(mapped, RequestRejectedError)
            return mapped
    raise AssertionError("no error")


@pytest.mark.parametrize("status, message, kind, specific", [
    (400, '"smollm2:135m" does not support tools', RequestRejectedError, False),
    (400, '"llama3.2:3b" does not support images', CapabilityMissingError, True),
    (404, 'model "x" not found, try pulling it first', ModelNotFoundError, True),
    (422, "unprocessable", RequestRejectedError, False),
])
def test_a_refusal_keeps_the_nodes_status_and_words(status: int, message: str, kind: type, specific: bool) -> None:
    error = _refusal(status, message)
    assert type(error) is kind and error.node_specific is specific
    assert (error.status, error.detail) == (status, message) and not error.counts_against_node


@pytest.mark.parametrize("failure, rejected, http", [
    (FailureKind.REJECTED, 404, 404),
    (FailureKind.REJECTED, 422, 422),
    (FailureKind.REJECTED, None, 400),     # the client library refused it: no node's status
    (FailureKind.NO_ROUTE, None, 503),
    (FailureKind.NODE_FAILED, None, 502),
])
def test_the_status_of_a_failed_task(failure: FailureKind, rejected: int | None, http: int) -> None:
    result = TaskResult("t", TaskStatus.FAILED, failure=failure, rejected_status=rejected,
                        rejected_message="the node's words" if rejected else "", error="the engine's words")
    assert failure_status(result) == http
    assert failure_message(result) == ("the node's words" if rejected else "the engine's words")


def test_every_openai_field_says_what_it_does() -> None:
    for table in (CHAT_FIELDS, COMPLETION_FIELDS):
        for name, rule in table.items():
            assert rule.kind in (HONOURED, NO_EFFECT, REFUSED) and rule.does, name
            assert rule.kind != REFUSED or rule.refuse is not None, name
    for fine in ({"tool_choice": "auto"}, {"tool_choice": "none"}, {"store": False}, {"logit_bias": {}},
                 {"parallel_tool_calls": True}, {"user": "u"}, {"modalities": ["text"]}):
        refuse_unsupported(fine, CHAT_FIELDS)
    for bad in ({"tool_choice": "required"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}},
                {"store": True}, {"logit_bias": {"1": 5}}, {"audio": {}}, {"functions": []}):
        with pytest.raises(FieldError) as refused:
            refuse_unsupported(bad, CHAT_FIELDS)
        assert refused.value.field == next(iter(bad)) and "not supported" in str(refused.value)


def test_n_choices_merge_into_one_body() -> None:
    def body(text: str, tokens: int, node: str) -> dict[str, Any]:
        return {"id": "chatcmpl-a", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": 3 + tokens},
                "hydra": {"nodes": [node]}}
    merged = merge_choices([body("a", 2, "light"), body("b", 5, "powerful")])
    assert [(c["index"], c["message"]["content"]) for c in merged["choices"]] == [(0, "a"), (1, "b")]
    assert merged["usage"] == {"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13}
    assert merged["hydra"] == {"nodes": ["light", "powerful"]} and merged["id"] == "chatcmpl-a"


def test_completion_logprobs_in_the_completions_shape() -> None:
    entries = ({"token": "Hello", "logprob": -0.1, "top_logprobs": [{"token": "Hello", "logprob": -0.1},
                                                                    {"token": "Hi", "logprob": -2.0}]},
               {"token": " world", "logprob": -0.5})
    assert completion_logprobs(entries, 3) == {
        "tokens": ["Hello", " world"], "token_logprobs": [-0.1, -0.5],
        "top_logprobs": [{"Hello": -0.1, "Hi": -2.0}, {}], "text_offset": [3, 8]}


@pytest.mark.parametrize("body, field", [
    ({"prompt": [1, 2]}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": "x", "n": 17}, "n"),
    ({"prompt": ["a"] * 5, "n": 4}, "n"),
    ({"prompt": "x", "echo": True, "logprobs": 1}, "logprobs"),
])
def test_completion_requests_refused_by_name(body: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as refused:
        completion_request({"model": "m", **body})
    assert refused.value.field == field
