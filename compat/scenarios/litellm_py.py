"""LiteLLM against the gateway: the ``ollama_chat/``, ``ollama/`` and ``openai/`` providers."""
from __future__ import annotations

import os

# LiteLLM fetches its model price list from GitHub at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from typing import Any

import litellm
from scenario_kit import CHAT_MODEL, EMBED_MODEL, PNG_1PX, REAL_MODEL, URL, run, scenario

litellm.telemetry = False
USER = [{"role": "user", "content": "Say hi"}]
OPENAI = {"api_base": URL + "/v1", "api_key": "unused"}


def _text(reply: Any) -> str:
    return str(reply.choices[0].message.content)


@scenario
def ollama_chat_completion() -> Any:
    reply = litellm.completion(model=f"ollama_chat/{CHAT_MODEL}", messages=USER, api_base=URL, max_tokens=8)
    return {"text": _text(reply), "completion_tokens": reply.usage.completion_tokens}


@scenario
def ollama_chat_stream() -> Any:
    parts = list(litellm.completion(model=f"ollama_chat/{CHAT_MODEL}", messages=USER, api_base=URL, max_tokens=12,
                                    stream=True))
    return {"chunks": len(parts), "text": "".join(p.choices[0].delta.content or "" for p in parts)}


@scenario
def ollama_chat_real_model() -> Any:
    reply = litellm.completion(model=f"ollama_chat/{REAL_MODEL}", api_base=URL, max_tokens=32, temperature=0, seed=42,
                               messages=[{"role": "user", "content": "What is the capital of France?"}])
    return _text(reply)


@scenario
def ollama_generate_completion() -> Any:
    return _text(litellm.completion(model=f"ollama/{CHAT_MODEL}", messages=USER, api_base=URL, max_tokens=8))


@scenario
def ollama_generate_stream() -> Any:
    parts = list(litellm.completion(model=f"ollama/{CHAT_MODEL}", messages=USER, api_base=URL, max_tokens=12,
                                    stream=True))
    return {"chunks": len(parts), "text": "".join(p.choices[0].delta.content or "" for p in parts)}


@scenario
def openai_completion() -> Any:
    return _text(litellm.completion(model=f"openai/{CHAT_MODEL}", messages=USER, max_tokens=8, **OPENAI))


@scenario
def openai_stream() -> Any:
    parts = list(litellm.completion(model=f"openai/{CHAT_MODEL}", messages=USER, max_tokens=12, stream=True,
                                    **OPENAI))
    return {"chunks": len(parts), "text": "".join(p.choices[0].delta.content or "" for p in parts if p.choices)}


@scenario
def openai_image_to_the_embedded_model() -> Any:
    """The node's 400 (SmolLM2 sees no images) must reach LiteLLM as a 400 (BadRequestError), not a 503
    that starts fallbacks."""
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_1PX}}]
    try:
        litellm.completion(model=f"openai/{REAL_MODEL}", messages=[{"role": "user", "content": content}],
                           max_tokens=8, num_retries=0, **OPENAI)
    except litellm.exceptions.APIError as exc:  # every LiteLLM status error derives from it or from openai's
        return {"type": type(exc).__name__, "status": getattr(exc, "status_code", None)}
    except Exception as exc:  # noqa: BLE001 - the exception's class is the result
        return {"type": type(exc).__name__, "status": getattr(exc, "status_code", None)}
    return {"type": None, "status": 200}


@scenario
def ollama_embedding() -> Any:
    reply = litellm.embedding(model=f"ollama/{EMBED_MODEL}", input=["first text", "second text"], api_base=URL)
    return {"count": len(reply.data), "dims": sorted({len(d["embedding"]) for d in reply.data})}


@scenario
def openai_embedding() -> Any:
    reply = litellm.embedding(model=f"openai/{EMBED_MODEL}", input=["first text"], **OPENAI)
    return {"count": len(reply.data), "dims": len(reply.data[0]["embedding"])}


@scenario
def openai_text_completion() -> Any:
    reply = litellm.text_completion(model=f"openai/{CHAT_MODEL}", prompt="Once upon a time", max_tokens=6, **OPENAI)
    return str(reply.choices[0].text)


@scenario
def ollama_text_completion() -> Any:
    reply = litellm.text_completion(model=f"ollama/{CHAT_MODEL}", prompt="Once upon a time", max_tokens=6,
                                    api_base=URL)
    return str(reply.choices[0].text)


if __name__ == "__main__":
    run()
