"""Which models can think (emit Ollama's separate ``thinking`` stream)."""
from __future__ import annotations

from collections.abc import Sequence

# Families that emit a separate thinking stream in Ollama. Some members of a
# thinking family do not think (the coder and embedding variants of qwen3).
_THINKING_PREFIXES = ("qwen3", "deepseek-r1", "gpt-oss", "magistral", "qwq")
_NON_THINKING_PREFIXES = ("qwen3-coder", "qwen3-embedding")

# Tokens of thinking that may still arrive after the budget is spent (the stream is cut at the
# next chunk): room the worker adds to ``num_predict`` and the reasoning engine counts on.
THINKING_SLACK_TOKENS = 16


def supports_thinking(model: str, capabilities: Sequence[str] | None = None) -> bool:
    """Whether ``model`` can think. ``capabilities`` from /api/show win when known;
    an empty list counts as unknown (Ollama before 0.6.4 reports none, and every
    model has at least "completion"), so the name decides."""
    if capabilities:
        return "thinking" in {str(c).strip().lower() for c in capabilities}
    base = model.strip().lower().rsplit("/", 1)[-1]  # hf.co/org/Qwen3-8B-GGUF:Q4 -> qwen3-8b-gguf:q4
    return base.startswith(_THINKING_PREFIXES) and not base.startswith(_NON_THINKING_PREFIXES)
