"""Hydra: run LLM tasks across a cluster of Ollama nodes (SOLLOL routing engine inside)."""
