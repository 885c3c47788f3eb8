"""The Python ``openai`` SDK against the gateway's /v1: chat, completions, embeddings, models, 4xx."""
from __future__ import annotations

from typing import Any

import openai
from scenario_kit import CHAT_MODEL, EMBED_MODEL, PNG_1PX, REAL_MODEL, URL, run, scenario

requests_sent: list[str] = []  # every HTTP request the SDK makes, retries included
http = openai.DefaultHttpxClient(event_hooks={"request": [lambda r: requests_sent.append(f"{r.method} {r.url.path}")]})
client = openai.OpenAI(base_url=URL + "/v1", api_key="unused", timeout=90, http_client=http)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
USER = [{"role": "user", "content": "Say hi"}]


@scenario
def models_list() -> Any:
    return [m.id for m in client.models.list()]


@scenario
def models_retrieve() -> Any:
    found = client.models.retrieve(CHAT_MODEL)
    return {"id": found.id, "object": found.object, "owned_by": found.owned_by}


@scenario
def chat() -> Any:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=8)
    return {"content": reply.choices[0].message.content, "finish_reason": reply.choices[0].finish_reason,
            "completion_tokens": reply.usage.completion_tokens if reply.usage else None, "model": reply.model}


@scenario
def chat_stream() -> Any:
    parts = list(client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=12, stream=True,
                                                stream_options={"include_usage": True}))
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    return {"chunks": len(parts), "text": text, "usage": bool(parts[-1].usage)}


@scenario
def chat_real_model_stream() -> Any:
    parts = list(client.chat.completions.create(
        model=REAL_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=32, temperature=0, seed=42, stream=True))
    return {"chunks": len(parts), "text": "".join(p.choices[0].delta.content or "" for p in parts if p.choices)}


@scenario
def chat_stop_and_seed() -> Any:
    one = client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=8, stop="zzz", seed=7)
    many = client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=8, stop=["zzz", "yyy"], seed=7)
    return [one.choices[0].finish_reason, many.choices[0].finish_reason]


@scenario
def chat_n_2() -> Any:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=4, n=2)
    return {"choices": len(reply.choices)}


@scenario
def chat_logprobs() -> Any:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=USER, max_tokens=4, logprobs=True,
                                           top_logprobs=2)
    content = reply.choices[0].logprobs.content if reply.choices[0].logprobs else None
    return {"tokens": len(content or []), "top": len(content[0].top_logprobs) if content else 0}


@scenario
def chat_tools() -> Any:
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "Weather in Rome?"}],
                                           tools=[WEATHER_TOOL])
    calls = reply.choices[0].message.tool_calls or []
    return {"finish_reason": reply.choices[0].finish_reason, "calls": [c.function.name for c in calls]}


@scenario
def chat_tool_choice_named() -> Any:
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    return [c.function.name for c in reply.choices[0].message.tool_calls or []]


@scenario
def chat_image_to_the_embedded_model() -> Any:
    """The embedded model cannot see images (400): the SDK must see that 400 once, not a 503 it retries."""
    requests_sent.clear()
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_1PX}}]
    try:
        client.chat.completions.create(model=REAL_MODEL, messages=[{"role": "user", "content": content}],
                                       max_tokens=8)
    except openai.APIStatusError as exc:
        return {"status": exc.status_code, "message": exc.message, "requests": list(requests_sent)}
    return {"status": 200, "requests": list(requests_sent)}


@scenario
def chat_image_to_text_model() -> Any:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_1PX}}]
    reply = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": content}])
    return reply.choices[0].message.content


@scenario
def completion() -> Any:
    reply = client.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=6)
    return {"text": reply.choices[0].text, "finish_reason": reply.choices[0].finish_reason, "object": reply.object}


@scenario
def completion_suffix() -> Any:
    reply = client.completions.create(model=CHAT_MODEL, prompt="def add(a, b):", suffix="    return c", max_tokens=6)
    return {"text": reply.choices[0].text}


@scenario
def completion_stream() -> Any:
    parts = list(client.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=8, stream=True))
    return {"chunks": len(parts), "text": "".join(p.choices[0].text for p in parts if p.choices)}


@scenario
def embeddings() -> Any:
    one = client.embeddings.create(model=EMBED_MODEL, input="The sky is blue")
    batch = client.embeddings.create(model=EMBED_MODEL, input=["first", "second"])
    return {"one": len(one.data), "dims": len(one.data[0].embedding), "batch": [d.index for d in batch.data],
            "usage": one.usage.prompt_tokens if one.usage else None}


@scenario
def embeddings_dimensions() -> Any:
    return len(client.embeddings.create(model=EMBED_MODEL, input="short", dimensions=64).data[0].embedding)


@scenario
def unknown_model() -> Any:
    requests_sent.clear()
    try:
        client.chat.completions.create(model="no-such-model:1b", messages=USER)
    except openai.APIStatusError as exc:
        return {"status": exc.status_code, "requests": len(requests_sent)}
    return {"status": 200, "requests": len(requests_sent)}


if __name__ == "__main__":
    run()
