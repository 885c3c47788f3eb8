"""Deterministic, readable text for simulated generations.

The same (model, prompt) always yields the same tokens, so tests can compare
runs and benchmarks are reproducible. A token is a word plus its trailing
space (or newline inside code), which is what one streamed chunk carries.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator

_WORDS = ["the", "a", "system", "request", "node", "model", "cluster", "answer", "result", "value", "function", "data", "task", "token", "stream", "result", "input", "output", "approach", "method", "step", "case", "test", "simple", "careful", "useful", "clear", "small", "large", "fast", "steady", "robust", "efficient", "returns", "handles", "checks", "builds", "keeps", "uses", "makes", "computes", "reads", "writes", "because", "when", "while", "so", "then", "also", "first", "next", "finally", "therefore", "however", "each", "every", "this", "that", "its", "their", "our", "with", "for", "from", "into", "over", "under", "memory", "queue", "thread", "latency", "throughput", "error", "retry", "timeout", "list", "map", "string", "number", "loop", "branch", "state", "cache", "order", "priority", "balance", "load"]

_THINK_OPENERS = (
    "Okay, let me think about this.",
    "Let me break the problem down.",
    "First I should understand what is being asked.",
    "Hmm, there are a few cases to consider.",
)

_CODE_RE = re.compile(
    r"\b(code|function|python|script|class|implement|program|def|algorithm|snippet)\b",
    re.IGNORECASE,
)

_CODE_SNIPPET = '''```python
def solve(items):
    """Return the items in sorted order without duplicates."""
    seen = set()
    result = []
    for item in sorted(items):
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result
```
'''


def seed_of(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def wants_code(prompt: str) -> bool:
    return bool(_CODE_RE.search(prompt))


def _tokenize(text: str) -> list[str]:
    """Split keeping whitespace attached to the preceding word."""
    return re.findall(r"\S+\s*|\s+", text)


def _sentences(rng: random.Random) -> Iterator[list[str]]:
    while True:
        n = rng.randint(6, 14)
        words = [rng.choice(_WORDS) for _ in range(n)]
        words[0] = words[0].capitalize()
        words[-1] += "."
        yield [w + " " for w in words]


def marker_tokens(model: str, node: str) -> list[str]:
    return _tokenize(f"[simulated {model} on {node}] ")


def content_tokens(model: str, node: str, prompt: str) -> Iterator[str]:
    """Endless token stream: marker, a sentence, maybe code, then prose."""
    rng = random.Random(seed_of("content", model, prompt))
    yield from marker_tokens(model, node)
    sentences = _sentences(rng)
    yield from next(sentences)
    if wants_code(prompt):
        yield "\n\n"
        yield from _tokenize(_CODE_SNIPPET)
        yield "\n"
    for sentence in sentences:
        yield from sentence


def thinking_tokens(model: str, prompt: str) -> Iterator[str]:
    rng = random.Random(seed_of("thinking", model, prompt))
    yield from _tokenize(rng.choice(_THINK_OPENERS) + " ")
    for sentence in _sentences(rng):
        yield from sentence


def token_count(text: str) -> int:
    """Tokens of ``text`` as this module cuts them (a streamed answer joined again)."""
    return len(_tokenize(text))


def code_token_count() -> int:
    return len(_tokenize(_CODE_SNIPPET)) + 2


def default_content_length(model: str, node: str, prompt: str) -> int:
    """20-120 tokens from the prompt's hash; long enough to show any code block."""
    n = 20 + seed_of("length", model, prompt) % 101
    if wants_code(prompt):
        n = max(n, len(marker_tokens(model, node)) + 16 + code_token_count())
    return n


def default_think_length(model: str, prompt: str) -> int:
    return 40 + seed_of("think-length", model, prompt) % 161


def prompt_token_count(texts: list[str], messages: int = 0) -> int:
    """~1.3 tokens per word plus a few template tokens per chat message."""
    words = sum(len(t.split()) for t in texts)
    return max(1, math.ceil(words * 1.3) + 4 * messages)


def tool_call(tool: object, prompt: str) -> dict:
    """The call a model makes of ``tool`` (Ollama's shape, ``{"type": "function", "function": {...}}``):
    every property of its JSON-schema parameters gets a deterministic value of its type, a string
    one word from the prompt's hash. ValueError when the tool is not a function with a name."""
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise ValueError(f'invalid tool: {tool!r} (expected {{"type": "function", "function": {{"name": ...}}}})')
    parameters = function.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    arguments = {}
    for key, schema in (properties or {}).items():
        arguments[key] = _argument(schema if isinstance(schema, dict) else {}, seed_of("tool", name, key, prompt))
    return {"function": {"name": name, "arguments": arguments}}


def schema_values(properties: dict, *seed_parts: str) -> dict[str, object]:
    """A deterministic value of its type for every property of a JSON schema's ``properties`` (the
    format of a structured answer, as ``tool_call`` fills a tool's arguments)."""
    return {key: _argument(schema if isinstance(schema, dict) else {}, seed_of("schema", key, *seed_parts))
            for key, schema in properties.items()}


def _argument(schema: dict, seed: int) -> object:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first that is not null
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return _WORDS[seed % len(_WORDS)]


def token_ids(text: str) -> list[int]:
    """Token ids of ``text`` as this module cuts it: what /api/generate's ``context`` is made of."""
    return [seed_of("token", t) % 32_000 for t in _tokenize(text)]


def logprob(token: str, top: int, position: int) -> dict:
    """Ollama's logprobs entry for one generated token: the token itself most likely, then ``top``
    alternatives (words of this module) each less likely; deterministic."""
    chosen = -round(0.05 + (seed_of("logprob", token, str(position)) % 900) / 1000, 4)
    entry: dict = {"token": token, "logprob": chosen, "bytes": list(token.encode())}
    if top:
        others = [w for w in _WORDS if w != token.strip()][:top]
        entry["top_logprobs"] = [{"token": token, "logprob": chosen, "bytes": list(token.encode())}] + [
            {"token": w + " ", "logprob": round(chosen - 1.0 - i * 0.5, 4), "bytes": list((w + " ").encode())}
            for i, w in enumerate(others[: top - 1])]
    return entry
