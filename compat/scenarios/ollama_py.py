"""The Python ``ollama`` client against the gateway: every route of issue 12, as the client calls them."""
from __future__ import annotations

import tempfile
from typing import Any

import ollama
from scenario_kit import CHAT_MODEL, EMBED_MODEL, PNG_1PX, REAL_MODEL, URL, run, scenario

client = ollama.Client(host=URL, timeout=90)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PULLED = "qwen2.5-coder:32b"  # in the simulator's catalogue, on no seed node until pulled
COPY = "compat-copy:latest"


@scenario
def list_models() -> Any:
    return [{"name": m.model, "digest": m.digest, "modified_at": m.modified_at, "size": m.size,
             "family": m.details.family if m.details else None,
             "parameter_size": m.details.parameter_size if m.details else None}
            for m in client.list().models]


@scenario
def show() -> Any:
    shown = client.show(CHAT_MODEL)
    return {"family": shown.details.family if shown.details else None,
            "parameter_size": shown.details.parameter_size if shown.details else None,
            "capabilities": shown.capabilities, "modified_at": shown.modified_at,
            "has_model_info": bool(shown.modelinfo)}


@scenario
def chat() -> Any:
    reply = client.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi"}],
                        options={"num_predict": 8})
    return {"content": reply.message.content, "done": reply.done, "eval_count": reply.eval_count,
            "model": reply.model}


@scenario
def chat_stream() -> Any:
    parts = list(client.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "Count"}], stream=True,
                             options={"num_predict": 12}))
    return {"chunks": len(parts), "last_done": parts[-1].done, "text": "".join(p.message.content or "" for p in parts)}


@scenario
def chat_real_model() -> Any:
    reply = client.chat(model=REAL_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
                        options={"num_predict": 32, "temperature": 0, "seed": 42})
    return {"content": reply.message.content, "model": reply.model}


@scenario
def chat_tools() -> Any:
    reply = client.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}],
                        tools=[WEATHER_TOOL])
    calls = reply.message.tool_calls or []
    return [{"name": c.function.name, "arguments": dict(c.function.arguments)} for c in calls]


@scenario
def ps_after_chat() -> Any:
    client.chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2})
    return [{"name": m.model, "digest": m.digest, "expires_at": m.expires_at, "size_vram": m.size_vram,
             "family": m.details.family if m.details else None} for m in client.ps().models]


@scenario
def generate() -> Any:
    reply = client.generate(model=CHAT_MODEL, prompt="Once upon a time", options={"num_predict": 8})
    return {"response": reply.response, "done": reply.done, "context": list(reply.context or [])}


@scenario
def generate_with_context() -> Any:
    first = client.generate(model=CHAT_MODEL, prompt="Remember the word apple.", options={"num_predict": 4})
    second = client.generate(model=CHAT_MODEL, prompt="Which word?", context=first.context,
                             options={"num_predict": 4})
    return {"first_context": len(first.context or []), "second_context": len(second.context or []),
            "response": second.response}


@scenario
def generate_raw() -> Any:
    reply = client.generate(model=CHAT_MODEL, prompt="<|user|>hi<|assistant|>", raw=True, options={"num_predict": 4})
    return {"response": reply.response, "done": reply.done}


@scenario
def generate_suffix() -> Any:
    reply = client.generate(model=CHAT_MODEL, prompt="def add(a, b):", suffix="    return c",
                            options={"num_predict": 6})
    return {"response": reply.response, "done": reply.done}


@scenario
def generate_image_to_text_model() -> Any:
    return client.generate(model=CHAT_MODEL, prompt="What is in this picture?", images=[PNG_1PX]).response


@scenario
def load_with_empty_prompt() -> Any:
    reply = client.generate(model=CHAT_MODEL)
    return {"done": reply.done, "done_reason": reply.done_reason, "response": reply.response}


@scenario
def load_with_empty_messages() -> Any:
    reply = client.chat(model=CHAT_MODEL, messages=[])
    return {"done": reply.done, "done_reason": reply.done_reason}


@scenario
def unload() -> Any:
    client.generate(model=CHAT_MODEL, prompt="hi", options={"num_predict": 2})
    reply = client.generate(model=CHAT_MODEL, keep_alive=0)
    still_loaded = [m.model for m in client.ps().models]
    return {"done": reply.done, "done_reason": reply.done_reason, "loaded_after": still_loaded}


@scenario
def embed_single() -> Any:
    reply = client.embed(model=EMBED_MODEL, input="The sky is blue")
    again = client.embed(model=EMBED_MODEL, input="The sky is blue")
    return {"count": len(reply.embeddings), "dims": len(reply.embeddings[0]),
            "deterministic": reply.embeddings == again.embeddings, "model": reply.model}


@scenario
def embed_batch() -> Any:
    reply = client.embed(model=EMBED_MODEL, input=["first text", "second text", "third"])
    return {"count": len(reply.embeddings), "dims": sorted({len(e) for e in reply.embeddings}),
            "distinct": len({tuple(e) for e in reply.embeddings})}


@scenario
def embed_dimensions() -> Any:
    reply = client.embed(model=EMBED_MODEL, input="shorter please", dimensions=64, truncate=True)
    return {"dims": len(reply.embeddings[0])}


@scenario
def embeddings_legacy() -> Any:
    reply = client.embeddings(model=EMBED_MODEL, prompt="The sky is blue")
    return {"dims": len(reply.embedding)}


@scenario
def pull() -> Any:
    statuses = [p.status for p in client.pull(PULLED, stream=True)]
    return {"statuses": statuses, "listed_after": PULLED in {m.model for m in client.list().models}}


@scenario
def copy_then_delete() -> Any:
    copied = client.copy(CHAT_MODEL, COPY).status
    listed = COPY in {m.model for m in client.list().models}
    deleted = client.delete(COPY).status
    gone = COPY not in {m.model for m in client.list().models}
    return {"copied": copied, "listed": listed, "deleted": deleted, "gone": gone}


@scenario
def create_from_existing() -> Any:
    reply = client.create(model="compat-terse", from_=CHAT_MODEL, system="You answer in one word.")
    shown = client.show("compat-terse")
    return {"status": reply.status, "system": shown.system if hasattr(shown, "system") else None}


@scenario
def create_blob() -> Any:
    with tempfile.NamedTemporaryFile(suffix=".bin") as blob:
        blob.write(b"hydra compat blob\n")
        blob.flush()
        # A blob belongs to no model yet, so no listing says where it goes: the client names the node
        # (the seed cluster's "light"), as the README says, with the header every request can carry.
        named = ollama.Client(host=URL, timeout=90, headers={"X-Hydra-Node": "light"})
        return named.create_blob(blob.name)


@scenario
def chat_unknown_model() -> Any:
    return client.chat(model="no-such-model:1b", messages=[{"role": "user", "content": "hi"}]).message.content


if __name__ == "__main__":
    run()
