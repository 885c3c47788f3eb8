"""The checks of what a request may carry: Task.validate (every caller), the gateway's strict JSON body,
and the images a worker hands to the client library."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest
from ollama._types import Image

from hydra.gateway.validate import BodyError, ollama_request, parse_body
from hydra.sollol import Task, TaskError
from hydra.sollol.validation import MAX_DEPTH, FieldError
from hydra.sollol.worker import build_messages

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# (Task fields, the field the message must name)
BAD_TASKS: list[tuple[dict[str, Any], str]] = [
    ({"prompt": 5}, "prompt"),
    ({"prompt": "caf\udce9"}, "prompt"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": {"a": 1}}]}, "messages[0].content"),
    ({"messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "x", "images": ["%%%"]}]}, "messages[0].images[0]"),
    ({"messages": [{"role": "user", "content": "x", "images": [b"raw"]}]}, "messages[0].images[0]"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f",
                                                                                    "arguments": []}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"prompt": "x", "system": 3}, "system"),
    ({"prompt": "x", "max_tokens": True}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 10 ** 7}, "max_tokens"),
    ({"prompt": "x", "thinking_budget": 0}, "thinking_budget"),
    ({"prompt": "x", "deadline": math.nan}, "deadline"),
    ({"prompt": "x", "deadline": -1}, "deadline"),
    ({"prompt": "x", "min_success_rate": math.nan}, "min_success_rate"),
    ({"prompt": "x", "think": "maybe"}, "think"),
    ({"prompt": "x", "think": 1}, "think"),
    ({"prompt": "x", "options": {"temperature": "hot"}}, "options.temperature"),
    ({"prompt": "x", "options": {"temperature": math.inf}}, "options.temperature"),
    ({"prompt": "x", "options": {"num_predict": 10 ** 7}}, "options.num_predict"),
    ({"prompt": "x", "options": {"num_ctx": 2 ** 70}}, "options.num_ctx"),
    ({"prompt": "x", "options": {"use_mmap": "yes"}}, "options.use_mmap"),
    ({"prompt": "x", "options": {"stop": ["a", 1]}}, "options.stop[1]"),
    ({"prompt": "x", "options": {"unknown": math.nan}}, "options.unknown"),
    ({"prompt": "x", "options": {"caf\udce9": 2}}, "options (a key)"),
    ({"prompt": "x", "keep_alive": math.inf}, "keep_alive"),
    ({"prompt": "x", "keep_alive": "soon"}, "keep_alive"),
    ({"prompt": "x", "keep_alive": 1e308}, "keep_alive"),
    ({"prompt": "x", "keep_alive": "-99999999999h"}, "keep_alive"),
    ({"prompt": "x", "format": {"type": "object", "minimum": math.nan}}, "format.minimum"),
    ({"prompt": "x", "format": {"a": nested(MAX_DEPTH + 1)}}, "format.a"),
    ({"prompt": "x", "format": {"a": {1, 2}}}, "format.a"),
    ({"prompt": "x", "tools": [{"type": "function"}]}, "tools[0].function"),
    ({"prompt": "x", "tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
    ({"prompt": "x", "tools": [{"type": "retrieval", "function": {"name": "f"}}]}, "tools[0].type"),
    ({"prompt": "x", "tools": [{**TOOL, "function": {"name": "f", "parameters": [1]}}]}, "tools[0].function.parameters"),
]


@pytest.mark.parametrize("fields, field", BAD_TASKS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_TASKS)])
def test_a_bad_task_field_is_refused_by_name(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(TaskError) as refused:
        Task(**fields).validate()
    assert field in str(refused.value)


def test_a_good_task_passes_with_its_options_in_ollamas_types() -> None:
    task = Task(messages=[{"role": "system", "content": "be brief"}, {**USER, "images": ["aGk="]},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"function": {"name": "f", "arguments": {"x": 1.5}}}]},
                          {"role": "tool", "content": "42", "tool_name": "f"}],
                tools=[TOOL], think="high", keep_alive="1h30m", format={"type": "object"}, max_tokens=10 ** 6,
                options={"top_k": 40.0, "temperature": 0, "seed": None, "stop": ["\n"], "num_predict": -2,
                         "sim_think_tokens": 3})
    task.validate()
    assert task.options == {"top_k": 40, "temperature": 0, "stop": ["\n"], "num_predict": -2, "sim_think_tokens": 3}
    assert isinstance(task.options["top_k"], int)
    odd = Task(prompt="x", options={("a", 1): 2, 7: True})
    odd.validate()
    assert odd.options == {"('a', 1)": 2, "7": True}  # sendable: JSON keys are strings
    for keep_alive in ("5m", "-1", "300", 0, -1, 2.5, "1h30m", None, "-1m", 9e9, "2500000h"):
        Task(prompt="x", keep_alive=keep_alive).validate()


# --- the gateway's body ---

@pytest.mark.parametrize("raw, field", [
    (b'{"options": {"temperature": NaN}}', "options.temperature"),
    (b'{"options": {"num_predict": Infinity}}', "options.num_predict"),
    (b'{"max_tokens": -Infinity}', "max_tokens"),
    (b'{"top_p": 1e999}', "top_p"),
    (b'{"prompt": "\\ud800"}', "prompt"),
    (b'{"messages": [{"content": "ok", "role": "\\udfff"}]}', "messages[0].role"),
    (b'{"\\ud800": 1}', "(a key)"),
    ('{"prompt": "\ud800"}'.encode("utf-8", "surrogatepass"), "prompt"),
    ('{"prompt": "\ud800"}'.encode("utf-16-le", "surrogatepass"), "prompt"),
    (json.dumps({"format": nested(MAX_DEPTH)}).encode(), "format"),
])
def test_the_body_refuses_what_a_node_cannot_read_and_names_it(raw: bytes, field: str) -> None:
    with pytest.raises(FieldError) as refused:
        parse_body(raw)
    assert field in str(refused.value) and field in refused.value.field + " (a key)"


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b'"text"', b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000,
                                 b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"n": 1' + b"0" * 5000 + b"}"])
def test_a_body_that_is_not_a_json_object_is_a_body_error(raw: bytes) -> None:
    with pytest.raises(BodyError):
        parse_body(raw)


def test_an_ordinary_body_is_read_as_it_is() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": f"message {i} 🙂 😀"}
                                       for i in range(200)], "options": {"temperature": 0.5}}
    escaped = json.dumps(body).encode()  # ensure_ascii: the emoji as an escaped surrogate pair, which is valid
    assert b"\\ud83d\\ude00" in escaped
    assert parse_body(escaped) == body  # 200 objects: more brackets than MAX_DEPTH, not deep
    assert parse_body(b"") == {}


def test_stream_is_a_boolean_and_null_is_the_default() -> None:
    base = {"model": "m", "messages": [USER]}
    assert ollama_request({**base, "stream": None}, chat=True).stream is True  # as Ollama reads its *bool
    assert ollama_request({**base, "stream": False}, chat=True).stream is False
    for bad in ("yes", 1, 0, "false", [], {}):
        with pytest.raises(FieldError, match="stream must be true or false"):
            ollama_request({**base, "stream": bad}, chat=True)


def test_a_null_content_reaches_the_task_as_empty_text() -> None:
    checked = ollama_request({"messages": [{"role": "user", "content": None}, USER]}, chat=True)
    assert checked.fields["messages"][0] == {"role": "user", "content": ""}


# --- images on their way to the client library ---

def test_images_go_to_the_client_as_bytes_so_it_never_reads_a_file_of_that_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "QUJD").write_bytes(b"a secret of this machine")  # "QUJD" is valid base64 (of b"ABC")
    assert Image(value="QUJD").model_dump() == base64.b64encode(b"a secret of this machine").decode()  # the hazard
    task = Task(messages=[{**USER, "images": ["QUJD"]}])
    task.validate()
    sent = build_messages(task)[0]["images"]
    assert sent == [b"ABC"] and Image(value=sent[0]).model_dump() == "QUJD"
    assert task.messages and task.messages[0]["images"] == ["QUJD"]  # the task itself is left as it was


def test_an_openai_image_part_with_a_data_url_becomes_an_ollama_image() -> None:
    from hydra.gateway.openai_api import openai_request

    body = {"messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                         {"role": "user", "content": [{"type": "text", "text": "what is this? "},
                                                      {"type": "image_url",
                                                       "image_url": {"url": "data:image/png;base64,aGk="}}]}],
            "stream": None, "temperature": 1, "stop": "\n"}
    checked = openai_request(body)
    assert checked.fields["messages"] == [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "what is this? ", "images": ["aGk="]}]
    assert checked.stream is False and checked.fields["options"] == {"temperature": 1, "stop": ["\n"]}
