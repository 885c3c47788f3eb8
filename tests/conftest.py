"""Fixtures every test package may use: ``sim_node`` and ``sim_node_factory`` (simulated Ollama nodes)."""

pytest_plugins = ["hydra.sim.testing"]
