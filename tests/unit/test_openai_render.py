"""The OpenAI renderer's shortcut for plain text chunks writes exactly what the general path writes."""
from __future__ import annotations

import json

import pytest

from hydra.gateway.openai_api import OpenAIRenderer
from hydra.sollol import Chunk

TEXTS = ["Hello", " wörld", ' "quoted" \\ back', "tab\tnew\nline", "emoji 🦙", "\x00\x1f", "", "</script>"]


@pytest.mark.parametrize("model", ["bench-fast:1b", "", 'we"ird\u00e9:7b'])
def test_text_chunks_are_byte_for_byte_the_general_event(model: str) -> None:
    renderer = OpenAIRenderer("t1", "auto", None, False)
    first = renderer.chunk(Chunk(text="first", model=model))
    assert first is not None and json.loads(first[6:])["choices"][0]["delta"] == {"content": "first",
                                                                                 "role": "assistant"}
    for text in TEXTS:
        expected = renderer._event(model, {"content": text}, None) if text else None
        assert renderer.chunk(Chunk(text=text, model=model)) == expected
        if expected is not None:
            assert json.loads(expected[6:])["choices"][0]["delta"]["content"] == text


def test_a_chunk_with_thinking_or_tools_takes_the_general_path() -> None:
    renderer = OpenAIRenderer("t1", None, None, False)
    renderer.chunk(Chunk(text="a", model="m"))
    event = renderer.chunk(Chunk(text="b", thinking="hmm", model="m"))
    assert event is not None and json.loads(event[6:])["choices"][0]["delta"] == {"content": "b", "reasoning": "hmm"}
