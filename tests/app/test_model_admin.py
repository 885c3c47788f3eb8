"""The Nodes page's model section, its pure parts: how far a pull is from its progress lines, and
which names it accepts before asking any node."""
from __future__ import annotations

import pytest

from hydra.ui.model_admin import NodeProgress, check_name


def test_progress_counts_the_bytes_of_every_layer_seen() -> None:
    progress = NodeProgress()
    assert progress.fraction == 0.0 and progress.text("light") == "light: starting (0%)"
    progress.add({"status": "pulling manifest"})
    progress.add({"status": "pulling aaa", "digest": "sha256:aaa", "total": 900, "completed": 450})
    progress.add({"status": "pulling bbb", "digest": "sha256:bbb", "total": 100, "completed": 0})
    assert progress.fraction == pytest.approx(0.45) and progress.text("light") == "light: pulling bbb (45%)"
    progress.add({"status": "verifying sha256 digest"})  # no digest: the layers stay as they were
    assert progress.fraction == pytest.approx(0.45)
    progress.add({"status": "success"})
    assert progress.fraction == 1.0


def test_a_failed_line_ends_the_nodes_bar_with_its_reason() -> None:
    progress = NodeProgress()
    progress.add({"status": "pulling aaa", "digest": "sha256:aaa", "total": 10, "completed": 5})
    progress.add({"node": "light", "status": "failed", "reason": "disk full"})
    assert progress.failed == "disk full" and progress.text("light") == "light: failed: disk full"


@pytest.mark.parametrize("name", ["qwen3:1.7b", "llama3.2", "hf.co/org/model:Q4_K_M", "me/model:v1"])
def test_model_names_ollama_takes(name: str) -> None:
    assert check_name(name) is None


@pytest.mark.parametrize("name", ["", "qwen3 8b", "model:tag:again", "-x", "a" * 201, "m\n", "m;rm"])
def test_names_refused_before_any_node_is_asked(name: str) -> None:
    assert check_name(name) is not None
