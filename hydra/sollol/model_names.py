"""How Ollama resolves a model name: the one rule every comparison of model names in Hydra uses."""
from __future__ import annotations

import functools

DEFAULT_TAG = "latest"


@functools.lru_cache(maxsize=4096)  # a cluster has few model names, and routing compares them in every decision
def model_key(name: str) -> str:
    """The name Ollama resolves ``name`` to, for comparing: trimmed, lower case, ``:latest`` when untagged.

    'mistral', 'Mistral:Latest' and 'mistral:latest' are one model. The tag is looked for after the last
    '/', so a registry's port (``localhost:5000/model``) is not taken for one."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:{DEFAULT_TAG}"
