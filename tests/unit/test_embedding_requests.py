"""Embedding tasks and requests: what is accepted and what is refused, naming the field (tables)."""
from __future__ import annotations

from typing import Any

import pytest

from hydra.gateway.embed_api import ollama_embed_request, ollama_embeddings_request, openai_embed_request
from hydra.sollol import Task, TaskError
from hydra.sollol.embedding import MAX_INPUTS
from hydra.sollol.validation import FieldError


def _task(**fields: Any) -> Task:
    return Task(**{"task_type": "embedding", "model": "nomic-embed-text", "input": ["a text"], **fields})


def test_a_good_embedding_task_is_normalised() -> None:
    task = _task(dimensions=64.0, truncate=False, keep_alive="5m", options={"num_ctx": 2048.0, "seed": None})
    task.validate()
    assert (task.dimensions, task.options, task.input) == (64, {"num_ctx": 2048}, ["a text"])
    one = _task(input="just one")
    one.validate()
    assert one.input == ["just one"]
    empty = _task(input=[])  # no texts: the node only loads the model, as Ollama does
    empty.validate()


@pytest.mark.parametrize("fields,words", [
    ({"model": None}, "must name its model"), ({"model": "  "}, "must name its model"),
    ({"input": None}, "input must be a string or a list of strings, got null"),
    ({"input": ["ok", 3]}, "input[1] must be a string, got a number"),
    ({"input": ["x"] * (MAX_INPUTS + 1)}, f"at most {MAX_INPUTS}"),
    ({"prompt": "hi"}, "takes its texts in input"),
    ({"messages": [{"role": "user", "content": "x"}]}, "takes its texts in input"),
    ({"tools": []}, "tools is not used"), ({"think": False}, "think is not used"),
    ({"max_tokens": 3}, "max_tokens is not used"),
    ({"truncate": "yes"}, "truncate must be true or false"),
    ({"dimensions": 0}, "dimensions must be an integer from 1"),
    ({"dimensions": 1.5}, "dimensions must be an integer"),
    ({"keep_alive": "soon"}, "keep_alive must be a duration"),
    ({"options": {"num_ctx": "big"}}, "options.num_ctx must be a number"),
    ({"priority": 11}, "priority must be an integer from 1 to 10"),
    ({"deadline": -1}, "deadline must be a positive number"),
])
def test_a_bad_embedding_task_is_refused_naming_the_field(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(TaskError) as refused:
        _task(**fields).validate()
    assert words in str(refused.value)


def test_the_ollama_routes_read_their_fields() -> None:
    asked = ollama_embed_request({"model": "m", "input": ["a", "b"], "truncate": True, "dimensions": 8,
                                  "keep_alive": 0, "options": {"num_thread": 2}, "stream": False})
    assert asked.texts == ["a", "b"]
    assert asked.fields == {"truncate": True, "dimensions": 8, "keep_alive": 0, "options": {"num_thread": 2}}
    assert ollama_embed_request({"model": "m"}).texts == [] and ollama_embed_request({"input": ""}).texts == []
    assert ollama_embeddings_request({"prompt": "p", "keep_alive": "1m"}).texts == ["p"]
    assert ollama_embeddings_request({"prompt": ""}).texts == []
    with pytest.raises(FieldError, match="prompt must be a string"):
        ollama_embeddings_request({"prompt": ["p"]})


@pytest.mark.parametrize("body,field", [
    ({}, "input"), ({"input": []}, "input"), ({"input": ["a", ""]}, "input"), ({"input": [1, 2]}, "input"),
    ({"input": [[1], [2, 3]]}, "input"), ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "a", "dimensions": -1}, "dimensions"), ({"input": "a", "user": 5}, "user"),
    ({"input": ["a", None]}, "input[1]"),
])
def test_the_openai_route_refuses_what_it_cannot_honour(body: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as refused:
        openai_embed_request(body)
    assert refused.value.field == field


def test_the_openai_route_reads_its_fields() -> None:
    asked = openai_embed_request({"input": "a", "dimensions": 256, "encoding_format": "base64", "user": "u1"})
    assert (asked.texts, asked.fields, asked.encoding) == (["a"], {"dimensions": 256}, "base64")
    assert openai_embed_request({"input": ["a", "b"]}).encoding == "float"
