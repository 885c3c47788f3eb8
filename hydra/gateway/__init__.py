"""The whole cluster behind one Ollama- and OpenAI-compatible address.

``app`` builds the Starlette app and runs uvicorn; ``ollama_api`` and ``openai_api`` are the
two APIs; ``stream`` turns a request into a task and a task's chunks into a response;
``metrics`` is the Prometheus exposition at ``/metrics``; ``models_api`` (over ``model_ops``) manages
the nodes' models; ``access_log`` writes a line per request; ``service_api`` is the one Protocol
(``GatewayService``) through which all of them reach the rest of Hydra."""
from __future__ import annotations

from .app import Gateway

__all__ = ["Gateway"]
