"""Pure parts of model management and the access log: sizes from names, node credentials, how a request
over several nodes ends, and what a log line may hold."""
from __future__ import annotations

import pytest

from hydra.gateway.access_log import MAX_FIELD_CHARS, clean
from hydra.gateway.model_ops import Outcome, Target, TargetError, estimate_size_b, named_target, summary
from hydra.sollol import NodeSpec


@pytest.mark.parametrize(("name", "size"), [
    ("qwen2.5-coder:7b", 7.0), ("qwen2.5-coder:1.5b", 1.5), ("smollm2:135m", 0.135), ("mixtral:8x7b", 56.0),
    ("llama3.1:70b-instruct-q4_K_M", 70.0), ("library/qwen3:14b", 14.0), ("hf.co/org/Model-3B-GGUF:latest", 3.0),
    ("mistral:latest", None), ("mistral", None), ("qwen3:latest", None), ("llama3:8b", 8.0),
])
def test_a_size_from_the_name(name: str, size: float | None) -> None:
    assert estimate_size_b(name) == (pytest.approx(size) if size is not None else None)


def test_credentials_become_basic_auth_and_leave_the_url() -> None:
    target = Target.of(NodeSpec(url="http://ops:p%40ss@127.0.0.5:11434", name="guarded"))
    assert target.base_url == "http://127.0.0.5:11434" and target.auth is not None
    assert "p@ss" not in repr(target) and "ops" not in repr(target)
    assert Target.of(NodeSpec(url="http://127.0.0.5:11434", name="open")).auth is None


def test_the_node_header_names_a_node_or_lists_the_names() -> None:
    specs = [NodeSpec(url="http://127.0.0.2:11434", name="light"), NodeSpec(url="http://127.0.0.3:11434", name="gpu")]
    assert named_target(specs, None) is None and named_target(specs, "  ") is None
    assert named_target(specs, " gpu ") == Target.of(specs[1])
    with pytest.raises(TargetError) as wrong:
        named_target(specs, "heavy")
    assert wrong.value.status == 400 and wrong.value.message.endswith("the nodes are: gpu, light")


def test_a_request_over_nodes_succeeds_only_when_every_node_did() -> None:
    assert summary("pull m", [Outcome("a", ok=True, status=200)]) == (200, {"status": "success", "nodes": ["a"]})
    status, body = summary("pull m", [Outcome("a", ok=True, status=200), Outcome("b", status=500, reason="disk full")])
    assert status == 502 and body == {"error": "pull m failed on 1 of 2 node(s) (b: disk full); done on a"}
    # every node refused alike: their status is the answer's (a 404 stays a 404)
    same = summary("delete m", [Outcome("a", status=404, reason="not found"), Outcome("b", status=404, reason="x")])
    assert same[0] == 404
    assert summary("copy", [Outcome("a", status=0, reason="ConnectError")])[0] == 502  # no answer at all


def test_a_log_field_is_one_printable_bounded_word() -> None:
    assert clean("") == "-"
    assert clean("/a b\nGET /x\x1b[31m") == "/a?b?GET?/x?[31m"
    long = clean("/" + "x" * 1000)
    assert len(long) == MAX_FIELD_CHARS + 3 and long.endswith("...")
