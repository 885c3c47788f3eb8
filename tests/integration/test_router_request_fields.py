"""Request fields the Router passes to the node as they are: format (JSON mode, JSON schema) and keep_alive."""
from __future__ import annotations

import json

import ollama
import pytest

from hydra.sollol import Task, TaskError, TaskStatus


def test_format_json_reaches_the_node_and_the_answer_parses(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(prompt="Name a colour.", model="llama3.2:3b", format="json", max_tokens=12)
                           ).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    assert isinstance(json.loads(result.text)["answer"], str)


def test_a_json_schema_shapes_the_answer(seed, make_router):
    router = make_router(seed)
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    result = router.submit(Task(prompt="Name a colour.", model="llama3.2:3b", format=schema, max_tokens=9)
                           ).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    assert list(json.loads(result.text)) == ["colour"]


def test_without_format_the_answer_is_plain_text(seed, make_router):
    router = make_router(seed)
    result = router.submit(Task(prompt="Name a colour.", model="llama3.2:3b", max_tokens=12)).result(timeout=60)
    with pytest.raises(ValueError):
        json.loads(result.text)


def test_keep_alive_zero_unloads_the_model_after_the_answer(seed, make_router, eventually):
    router = make_router(seed)
    result = router.submit(Task(prompt="Hello", model="llama3.2:3b", keep_alive=0, max_tokens=4)).result(timeout=60)
    assert result.status is TaskStatus.DONE, result.error
    node_url = next(n.url for n in router.snapshot().nodes if n.name == result.node)
    eventually(lambda: "llama3.2:3b" not in {m.model for m in ollama.Client(host=node_url).ps().models},
               what="the model unloaded (keep_alive 0)")


@pytest.mark.parametrize("fields, words", [
    ({"format": "xml"}, "format must be"),
    ({"format": ["json"]}, "format must be"),
    ({"keep_alive": True}, "keep_alive must be"),
    ({"keep_alive": [5]}, "keep_alive must be"),
])
def test_bad_request_fields_are_refused_with_the_reason(seed, make_router, fields, words):
    router = make_router(seed)
    with pytest.raises(TaskError, match=words):
        router.submit(Task(prompt="Hello", **fields))
