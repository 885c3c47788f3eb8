"""The README's compatibility table, from a run: each (client, feature) cell says what its tests showed.

Every compat test carries ``@pytest.mark.feature(client, feature)``. A cell is "yes" when every test
of it passed, "no" when any failed (with how many of how many passed), and empty when nothing tested
it. ``make compat`` writes the table to artifacts/compat-table.md; the README's copy is pasted from there.
"""
from __future__ import annotations

from collections.abc import Mapping

FEATURES = ("list models", "show / retrieve", "chat", "streaming", "real model", "tools", "structured output",
            "generate / completions", "embeddings", "load / unload", "model management", "errors keep their status",
            "abort", "stays on this machine")
CLIENTS = ("ollama (Python)", "openai (Python)", "langchain-ollama", "LiteLLM", "llm + llm-ollama", "ollama (JS)",
           "openai (JS)", "Open WebUI")


def cell(outcomes: list[bool]) -> str:
    if not outcomes:
        return ""
    passed = sum(outcomes)
    return "yes" if passed == len(outcomes) else f"no ({passed}/{len(outcomes)})"


def markdown(results: Mapping[tuple[str, str], list[bool]]) -> str:
    """A client x feature table; a client or feature the tests name but the lists lack is refused."""
    unknown = sorted({c for c, _ in results} - set(CLIENTS)) + sorted({f for _, f in results} - set(FEATURES))
    if unknown:
        raise ValueError(f"feature markers name unknown clients or features: {unknown}")
    features = [f for f in FEATURES if any((c, f) in results for c in CLIENTS)]
    lines = ["| client | " + " | ".join(features) + " |", "|---|" + "---|" * len(features)]
    for client in CLIENTS:
        if any((client, f) in results for f in features):
            lines.append(f"| {client} | " + " | ".join(cell(results.get((client, f), [])) for f in features) + " |")
    return "\n".join(lines) + "\n"
