"""Every field of OpenAI's chat and completions requests, and what Hydra does with each.

Nothing a client sends is dropped silently: a field is honoured (it becomes what Ollama does the
same with), has no effect by its own definition (an identifier for OpenAI's abuse monitoring, say),
or is refused with a 400 that names it and says why, when Hydra cannot do what the value asks.
``CHAT_FIELDS`` and ``COMPLETION_FIELDS`` are the tables (the README's table is drawn from them, and
tests/unit/test_openai_fields.py walks them); ``refuse_unsupported`` applies them to a body.
Fields OpenAI does not define are ignored, as Ollama ignores unknown fields (clients add their own).

The type and range checks of the honoured fields are in validate.py and openai_api.py.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.sollol.validation import FieldError

HONOURED = "honoured"
NO_EFFECT = "no effect"
REFUSED = "refused"


@dataclass(frozen=True)
class FieldRule:
    """What Hydra does with one field: ``kind`` (honoured, no effect, refused), in words (``does``),
    and ``refuse``: the values it cannot honour, as why not (None: the value is taken)."""

    kind: str
    does: str
    refuse: Callable[[Any], str | None] | None = None


def _unless(allowed: Callable[[Any], bool], why: str) -> Callable[[Any], str | None]:
    return lambda value: None if allowed(value) else why


def _never(why: str) -> Callable[[Any], str | None]:
    return lambda value: why


_NO_FORCED_CALL = ('Ollama cannot force a tool call; send "auto" (the model may call a tool) or "none"')
_SAMPLING = "the Ollama option of the same name, within OpenAI's range"

_COMMON: dict[str, FieldRule] = {
    "model": FieldRule(HONOURED, 'the model; "auto" or absent: Hydra\'s tiers choose one'),
    "stream": FieldRule(HONOURED, "server-sent events, one chunk per token, then [DONE]"),
    "stream_options": FieldRule(HONOURED, "include_usage: a last chunk with the token counts"),
    "max_tokens": FieldRule(HONOURED, "options.num_predict (the answer's length)"),
    "temperature": FieldRule(HONOURED, _SAMPLING),
    "top_p": FieldRule(HONOURED, _SAMPLING),
    "frequency_penalty": FieldRule(HONOURED, _SAMPLING),
    "presence_penalty": FieldRule(HONOURED, _SAMPLING),
    "seed": FieldRule(HONOURED, "options.seed: the same seed and prompt give the same answer on one node"),
    "stop": FieldRule(HONOURED, "options.stop: a string or a list of up to 4"),
    "n": FieldRule(HONOURED, "n tasks (on any nodes), choices indexed 0..n-1; more than 1 refused with stream"),
    "user": FieldRule(NO_EFFECT, "an end-user id for OpenAI's abuse monitoring: Hydra has none"),
    "safety_identifier": FieldRule(NO_EFFECT, "an end-user id for OpenAI's abuse monitoring: Hydra has none"),
    "logit_bias": FieldRule(REFUSED, "refused unless empty: Ollama has no logit bias",
                            _unless(lambda v: v == {}, "Ollama has no logit bias; leave it out")),
    "service_tier": FieldRule(NO_EFFECT, '"auto" and "default": no effect; other tiers refused',
                              _unless(lambda v: v in ("auto", "default"), 'Hydra has one tier; send "auto" or '
                                                                           "leave it out")),
}

CHAT_FIELDS: Mapping[str, FieldRule] = {
    **_COMMON,
    "messages": FieldRule(HONOURED, "Ollama's messages: text parts joined, data: images as images (a vision "
                                    "model only), tool calls and results converted"),
    "max_completion_tokens": FieldRule(HONOURED, "options.num_predict (as max_tokens)"),
    "tools": FieldRule(HONOURED, "Ollama's tools (the same function shape)"),
    "tool_choice": FieldRule(HONOURED, '"none": no tools sent; "auto": tools sent; "required" and a named '
                                       "function refused: " + _NO_FORCED_CALL,
                             _unless(lambda v: v != "required" and not isinstance(v, dict), _NO_FORCED_CALL)),
    "parallel_tool_calls": FieldRule(HONOURED, "true (the default) is what Ollama does; false refused",
                                     _unless(lambda v: v is True, "Ollama may call several tools in one "
                                                                  "answer and cannot be held to one")),
    "response_format": FieldRule(HONOURED, 'format: json_object as "json", json_schema as the schema'),
    "reasoning_effort": FieldRule(HONOURED, 'think: "none" off, "minimal" and "low" low, "medium", "high"'),
    "logprobs": FieldRule(HONOURED, "Ollama's logprobs, back as choices[].logprobs.content (not with stream)"),
    "top_logprobs": FieldRule(HONOURED, "Ollama's top_logprobs (0..20), with logprobs"),
    "store": FieldRule(NO_EFFECT, "false: no effect; true refused",
                       _unless(lambda v: v is False, "Hydra keeps no completions for OpenAI's stored "
                                                     "completions API")),
    "metadata": FieldRule(NO_EFFECT, "tags for stored completions: no effect (store is never true)"),
    "prompt_cache_key": FieldRule(NO_EFFECT, "a hint for OpenAI's prompt cache: Ollama caches by itself"),
    "modalities": FieldRule(HONOURED, '["text"] is what Hydra answers; audio refused',
                            _unless(lambda v: v == ["text"], "Hydra answers text only")),
    "audio": FieldRule(REFUSED, "refused: Hydra answers text only", _never("Hydra answers text only")),
    "prediction": FieldRule(REFUSED, "refused: Ollama has no predicted outputs",
                            _never("Ollama has no predicted outputs")),
    "web_search_options": FieldRule(REFUSED, "refused: Hydra does not search the web",
                                    _never("Hydra does not search the web")),
    "verbosity": FieldRule(REFUSED, "refused: Ollama has no verbosity setting",
                           _never("Ollama has no verbosity setting")),
    "functions": FieldRule(REFUSED, "refused (deprecated by OpenAI): send tools", _never("deprecated: send tools")),
    "function_call": FieldRule(REFUSED, "refused (deprecated by OpenAI): send tool_choice",
                               _never("deprecated: send tool_choice")),
}

COMPLETION_FIELDS: Mapping[str, FieldRule] = {
    **_COMMON,
    "prompt": FieldRule(HONOURED, "a string, or a list of strings (each its own choices); token arrays refused"),
    "suffix": FieldRule(HONOURED, "Ollama's suffix (fill-in-the-middle), through the node's /api/generate"),
    "echo": FieldRule(HONOURED, "the prompt, then the completion, in each choice's text"),
    "logprobs": FieldRule(HONOURED, "0..5: Ollama's logprobs and top_logprobs, back as tokens, token_logprobs, "
                                    "top_logprobs and text_offset (not with stream)"),
    "best_of": FieldRule(HONOURED, "1 (the default); more refused",
                         _unless(lambda v: v == 1, "Hydra generates each choice once; send n for more "
                                                   "choices")),
}


def refuse_unsupported(body: Mapping[str, Any], table: Mapping[str, FieldRule]) -> None:
    """FieldError (a 400 naming the field) for the first value ``table`` says Hydra cannot honour."""
    for name, rule in table.items():
        value = body.get(name)
        if value is None or rule.refuse is None:
            continue
        why = rule.refuse(value)
        if why:
            raise FieldError(name, "", text=f"{name} {_shown(value)} is not supported: {why}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
