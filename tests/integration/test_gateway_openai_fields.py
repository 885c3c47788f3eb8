"""Issue 12, item 7: the OpenAI API with the official openai client over the seed's simulated nodes:
/v1/completions (prompt string and list, suffix, echo, streaming, logprobs), /v1/models/{id}, n
choices, logprobs and top_logprobs, tool_choice, stop, seed; and every field of the table in
openai_fields.py honoured or refused with a 400 naming it, never dropped with a 200."""
from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from hydra.gateway import Gateway
from hydra.gateway.openai_fields import CHAT_FIELDS, COMPLETION_FIELDS, REFUSED
from hydra.sim import SimCluster

MODEL = "llama3.2:3b"
USER = [{"role": "user", "content": "Say something short"}]
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
def client(seed_gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=seed_gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def _counts(seed: SimCluster) -> dict[str, int]:
    return {n.name: len(n.stats()["received"]) for n in seed}


def _sent_since(seed: SimCluster, counts: dict[str, int]) -> list[dict[str, Any]]:
    """What the nodes received since ``counts`` (the requests of one test step)."""
    return [r for n in seed for r in n.stats()["received"][counts[n.name]:]]


# --- /v1/completions ---

def test_a_completion_of_one_prompt(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert reply.object == "text_completion" and len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0 and choice.text and choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_a_list_of_prompts_with_n_gives_every_choice_indexed_with_its_echo(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt=["first: ", "second: "], n=2, max_tokens=3, echo=True)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert [c.text.split("[", 1)[0] for c in reply.choices] == ["first: ", "first: ", "second: ", "second: "]
    assert reply.usage is not None and reply.usage.completion_tokens == 12


def test_a_streamed_completion_with_echo_and_usage(client: openai.OpenAI) -> None:
    events = list(client.completions.create(model=MODEL, prompt="stream me: ", max_tokens=4, stream=True, echo=True,
                                            stream_options={"include_usage": True}))
    texts = [e.choices[0].text for e in events if e.choices]
    assert texts[0].startswith("stream me: ") and len(texts) >= 4
    assert [e.choices[0].finish_reason for e in events if e.choices][-1] == "length"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 4


def test_a_suffix_goes_to_the_nodes_generate_and_logprobs_come_back(seed: SimCluster, client: openai.OpenAI) -> None:
    before = _counts(seed)
    reply = client.completions.create(model=MODEL, prompt="def area(r):", suffix="    return result", max_tokens=4,
                                      logprobs=2)
    [sent] = _sent_since(seed, before)
    assert sent.get("route", "chat") == "generate" and sent.get("generate") == {"suffix": "    return result"}
    assert sent.get("logprobs") == 2
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None and len(logprobs.tokens) == 4
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert logprobs.text_offset is not None and logprobs.text_offset[0] == 0
    assert logprobs.top_logprobs is not None and all(len(t) == 2 for t in logprobs.top_logprobs)
    assert all(lp is not None and lp < 0 for lp in logprobs.token_logprobs or [])


@pytest.mark.parametrize("fields, param", [
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
    ({"prompt": "x", "logprobs": 2, "stream": True}, "logprobs"),
    ({"prompt": "x", "logprobs": 9}, "logprobs"),
    ({"prompt": ["a", "b"], "stream": True}, "prompt"),
    ({"prompt": "x", "echo": "yes"}, "echo"),
])
def test_completions_refuse_what_they_cannot_honour(seed_gateway: Gateway, fields: dict[str, Any], param: str) -> None:
    reply = httpx.post(seed_gateway.url + "/v1/completions", json={"model": MODEL, "max_tokens": 3, **fields})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


# --- /v1/models/{id} ---

def test_one_model_and_openais_404_for_an_unknown_one(client: openai.OpenAI) -> None:
    model = client.models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "hydra")
    assert client.models.retrieve("mistral").id == "mistral:latest"  # a bare name is its :latest, as in Ollama
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model:1b")
    assert missing.value.body == {"message": "The model 'no-such-model:1b' does not exist",
                                  "type": "invalid_request_error", "param": "model", "code": "model_not_found"}


# --- chat: n, logprobs, tool_choice, stop, seed ---

def test_n_gives_n_choices_each_its_own_task(seed_gateway: Gateway, client: openai.OpenAI) -> None:
    before = len(seed_gateway.service.tasks(1000))
    reply = client.chat.completions.create(model=MODEL, messages=USER, n=3, max_tokens=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content for c in reply.choices)
    assert reply.usage is not None and reply.usage.completion_tokens == 9
    assert len(seed_gateway.service.tasks(1000)) == before + 3


def test_chat_logprobs_in_openais_shape(seed: SimCluster, client: openai.OpenAI) -> None:
    before = _counts(seed)
    reply = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=3, logprobs=True, top_logprobs=3)
    assert [r.get("logprobs") for r in _sent_since(seed, before)] == [3]
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 3
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    assert all(len(t.top_logprobs) == 3 and t.bytes == list(t.token.encode()) for t in content)


def test_tool_choice_auto_sends_the_tools_and_none_sends_none(client: openai.OpenAI) -> None:
    auto = client.chat.completions.create(model=MODEL, messages=USER, tools=[TOOL], tool_choice="auto")
    assert auto.choices[0].finish_reason == "tool_calls"
    none = client.chat.completions.create(model=MODEL, messages=USER, tools=[TOOL], tool_choice="none")
    assert none.choices[0].finish_reason != "tool_calls" and none.choices[0].message.content


def test_stop_as_a_string_or_a_list_and_seed_reach_the_node(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=12, seed=7)
    words = (whole.choices[0].message.content or "").split()
    stop_word = words[5]
    for stop in (stop_word, [stop_word, "zzz-never"]):
        cut = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=12, seed=7, stop=stop)
        assert cut.choices[0].finish_reason == "stop"
        assert stop_word not in (cut.choices[0].message.content or "").split()[5:]
    again = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=12, seed=7)
    assert again.choices[0].message.content == whole.choices[0].message.content


# --- the table: every field OpenAI defines ---

REFUSALS = {  # a value the table says Hydra cannot honour, for each field it may refuse
    "logit_bias": {"50256": -100}, "service_tier": "flex", "tool_choice": "required", "parallel_tool_calls": False,
    "store": True, "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "x"}, "web_search_options": {}, "verbosity": "low",
    "functions": [{"name": "f"}], "function_call": "auto", "best_of": 2,
}


@pytest.mark.parametrize("path, table", [("/v1/chat/completions", CHAT_FIELDS), ("/v1/completions", COMPLETION_FIELDS)])
def test_every_field_that_may_be_refused_is_refused_by_name(seed_gateway: Gateway, path: str,
                                                            table: dict[str, Any]) -> None:
    base: dict[str, Any] = {"model": MODEL, "max_tokens": 3}
    base.update({"messages": USER} if path.endswith("chat/completions") else {"prompt": "x"})
    if "tools" in table:
        base["tools"] = [TOOL]
    refusable = [name for name, rule in table.items() if rule.refuse is not None]
    assert refusable and all(name in REFUSALS for name in refusable), set(refusable) - set(REFUSALS)
    assert all(r.refuse is not None for r in table.values() if r.kind == REFUSED)
    for name in refusable:
        reply = httpx.post(seed_gateway.url + path, json={**base, name: REFUSALS[name]}, timeout=20)
        assert reply.status_code == 400, (name, reply.status_code, reply.text[:200])
        error = reply.json()["error"]
        assert error["param"] == name and "not supported" in error["message"], error


NO_EFFECT_VALUES = {"user": "u-1", "safety_identifier": "s-1", "metadata": {"k": "v"}, "prompt_cache_key": "c",
                    "store": False, "service_tier": "auto", "logit_bias": {}, "modalities": ["text"],
                    "parallel_tool_calls": True, "best_of": 1}


@pytest.mark.parametrize("name", sorted(NO_EFFECT_VALUES))
def test_a_value_the_table_accepts_is_answered(seed_gateway: Gateway, name: str) -> None:
    path = "/v1/completions" if name == "best_of" else "/v1/chat/completions"
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 3, name: NO_EFFECT_VALUES[name]}
    body.update({"prompt": "x"} if name == "best_of" else {"messages": USER})
    reply = httpx.post(seed_gateway.url + path, json=body, timeout=20)
    assert reply.status_code == 200, reply.text[:200]
