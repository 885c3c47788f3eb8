"""LangChain's ``langchain-ollama`` against the gateway: invoke, stream, tools, structured output, embeddings."""
from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings, OllamaLLM
from pydantic import BaseModel
from scenario_kit import CHAT_MODEL, EMBED_MODEL, REAL_MODEL, URL, run, scenario


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Capital(BaseModel):
    country: str
    capital: str


def chat(model: str = CHAT_MODEL, num_predict: int = 16, **kwargs: Any) -> ChatOllama:
    return ChatOllama(model=model, base_url=URL, num_predict=num_predict, client_kwargs={"timeout": 90}, **kwargs)


@scenario
def invoke() -> Any:
    reply = chat().invoke("Say hi")
    return {"content": reply.content, "model": reply.response_metadata.get("model")}


@scenario
def invoke_real_model() -> Any:
    return chat(REAL_MODEL, temperature=0, seed=42, num_ctx=2048).invoke("What is the capital of France?").content


@scenario
def stream() -> Any:
    parts = [c.content for c in chat().stream("Count to five")]
    return {"chunks": len(parts), "text": "".join(str(p) for p in parts)}


@scenario
def tools() -> Any:
    reply = chat().bind_tools([get_weather]).invoke("What is the weather in Paris?")
    return [{"name": c["name"], "args": c["args"]} for c in reply.tool_calls]


@scenario
def structured_output() -> Any:
    answer = chat(num_predict=400).with_structured_output(Capital).invoke("What is the capital of France?")
    return answer.model_dump() if isinstance(answer, BaseModel) else answer


@scenario
def embeddings() -> Any:
    embedder = OllamaEmbeddings(model=EMBED_MODEL, base_url=URL)
    query = embedder.embed_query("The sky is blue")
    documents = embedder.embed_documents(["first document", "second document"])
    return {"query_dims": len(query), "documents": len(documents), "doc_dims": sorted({len(d) for d in documents}),
            "same_text_same_vector": embedder.embed_query("The sky is blue") == query}


@scenario
def llm_generate() -> Any:
    return OllamaLLM(model=CHAT_MODEL, base_url=URL, num_predict=8).invoke("Once upon a time")


if __name__ == "__main__":
    run()
