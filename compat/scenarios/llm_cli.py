"""Simon Willison's ``llm`` CLI with the ``llm-ollama`` plugin, run as a user runs it (``llm models``, ``llm -m``).

The plugin groups models by digest: a gateway that gives every model the same digest makes ``llm``
answer every model with one of them. So each simulated model, asked by name, must answer as itself.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scenario_kit import CHAT_MODEL, EMBED_MODEL, OTHER_MODEL, REAL_MODEL, URL, run, scenario

LLM = str(Path(sys.executable).with_name("llm"))
HOME = tempfile.mkdtemp(prefix="llm-home-")  # the plugin's capability cache and llm's logs start empty
ENV = dict(os.environ, OLLAMA_HOST=URL, LLM_USER_PATH=HOME)


def llm(*args: str) -> str:
    done = subprocess.run([LLM, *args], env=ENV, capture_output=True, text=True, timeout=100, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"llm {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done.stdout


@scenario
def models() -> Any:
    return [line.split(":", 1)[1].strip().split(" (aliases")[0] for line in llm("models").splitlines()
            if line.startswith("Ollama")]


@scenario
def each_model_answers_as_itself() -> Any:
    return {name: llm("-m", f"ollama/{name}", "-o", "num_predict", "8", "Say hi") for name in (CHAT_MODEL, OTHER_MODEL)}


@scenario
def real_model() -> Any:
    return llm("-m", f"ollama/{REAL_MODEL}", "-o", "temperature", "0", "-o", "seed", "42", "-o", "num_predict", "32",
               "What is the capital of France?")


@scenario
def embedding_models() -> Any:
    return [line.strip() for line in llm("embed-models").splitlines() if "ollama" in line.lower()]


@scenario
def embed() -> Any:
    vector = llm("embed", "-m", f"ollama/{EMBED_MODEL}", "-c", "The sky is blue")
    return len(vector.strip().strip("[]").split(","))


if __name__ == "__main__":
    run()
