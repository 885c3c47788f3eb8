"""Model identity from the nodes' lists to the gateway's: parsing /api/tags and /api/ps, one entry per
model, the build most nodes hold, and the conflicts where nodes disagree (pure functions, tables)."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import ollama
import pytest

from hydra.gateway.model_listing import holders_of, ps_body, tags_body
from hydra.sollol.model_listing import installed_from, loaded_from, model_conflicts, parse_parameter_size, rfc3339
from hydra.sollol.types import ClusterSnapshot, LoadedModel, ModelDetails, ModelInfo, NodeSnapshot, RoutingMode

DETAILS = {"parent_model": "", "format": "gguf", "family": "qwen3", "families": ["qwen3"],
           "parameter_size": "8.2B", "quantization_level": "Q4_K_M"}


def test_tags_keep_digest_modified_at_and_details() -> None:
    listed = ollama.ListResponse.model_validate({"models": [
        {"model": "qwen3:8b", "modified_at": "2026-10-01T09:30:00.123456789+02:00", "size": 5_000_000_000,
         "digest": "ab" * 32, "details": DETAILS},
        {"model": "bare", "size": 1}, {"model": ""}]})
    info = installed_from(listed)
    assert set(info) == {"qwen3:8b", "bare"}
    qwen = info["qwen3:8b"]
    assert (qwen.digest, qwen.size_bytes, qwen.size_b) == ("ab" * 32, 5_000_000_000, 8.2)
    assert datetime.fromisoformat(qwen.modified_at) == datetime(2026, 10, 1, 7, 30, 0, 123456, tzinfo=UTC)
    assert "T" in qwen.modified_at
    assert qwen.details == ModelDetails("gguf", "qwen3", ("qwen3",), "8.2B", "Q4_K_M", "")
    assert (qwen.family, qwen.quantization) == ("qwen3", "Q4_K_M")
    assert info["bare"].details == ModelDetails() and info["bare"].modified_at == ""


def test_ps_expiry_is_rfc3339_with_a_t() -> None:
    running = ollama.ProcessResponse.model_validate({"models": [
        {"model": "qwen3:8b", "name": "qwen3:8b", "digest": "cd" * 32, "size": 6_000_000_000,
         "size_vram": 6_000_000_000, "expires_at": "2026-12-01T12:00:00Z", "details": DETAILS,
         "context_length": 8192}]})
    loaded = loaded_from(running)["qwen3:8b"]
    assert loaded.expires_at == "2026-12-01T12:00:00+00:00"
    assert (loaded.digest, loaded.context_length, loaded.details.family) == ("cd" * 32, 8192, "qwen3")


@pytest.mark.parametrize("value,expected", [
    (None, ""), (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7))), "2026-01-02T03:04:05-07:00"),
    ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z")])
def test_rfc3339(value: object, expected: str) -> None:
    assert rfc3339(value) == expected


@pytest.mark.parametrize("text,billions", [("7.6B", 7.6), ("137M", 0.137), ("70B", 70.0), ("", None), ("x", None)])
def test_parameter_size(text: str, billions: float | None) -> None:
    assert parse_parameter_size(text) == (pytest.approx(billions) if billions is not None else None)


def _info(name: str, digest: str, modified: str = "2026-10-01T00:00:00+00:00") -> ModelInfo:
    return ModelInfo(name, 8.2, 5_000, digest=digest, modified_at=modified,
                     details=ModelDetails("gguf", "qwen3", ("qwen3",), "8.2B", "Q4_K_M"))


def _node(name: str, installed: tuple[ModelInfo, ...], loaded: tuple[LoadedModel, ...] = (),
          healthy: bool = True) -> NodeSnapshot:
    return NodeSnapshot(
        name=name, url=f"http://127.0.0.9:{11434 + len(name)}", healthy=healthy, circuit="closed", last_error=None,
        gpu=True, local=True, max_model_b=None, slots=2, in_flight=0, vram_total_mb=None, vram_used_mb=None,
        vram_free_mb=None, installed=installed, loaded=loaded, version="0.12.0", last_seen=time.time(),
        requests=0, successes=0, failures=0, success_rate=None, ttft_p50_s=None, ttft_p95_s=None, tokens_per_s=None)


def _cluster(*nodes: NodeSnapshot) -> ClusterSnapshot:
    return ClusterSnapshot(time=time.time(), nodes=nodes, models=(), queue_depth=0, in_flight=0, max_concurrent=4,
                           parallel=True, default_mode=RoutingMode.FAST, vram_monitoring=False, by_node={},
                           by_model={}, by_mode={}, by_task_type={}, by_status={}, failovers=0)


def test_one_entry_per_model_with_the_build_most_nodes_hold() -> None:
    snap = _cluster(_node("a", (_info("q:8b", "old"), _info("m:1b", "m"))), _node("b", (_info("q:8b", "new"),)),
                    _node("c", (_info("q:8b", "new"),)), _node("down", (_info("q:8b", "x"),), healthy=False))
    body = tags_body(snap)
    assert [m["name"] for m in body["models"]] == ["m:1b", "q:8b"]
    q = body["models"][1]
    assert (q["digest"], q["nodes"], q["size"]) == ("new", ["a", "b", "c"], 5_000)
    assert q["details"] == {**DETAILS, "families": ["qwen3"]}
    assert holders_of(snap, "q:8b") == ["b", "c", "a"]  # the listed build first
    assert [c.as_dict() for c in model_conflicts(snap)] == [{"model": "q:8b",
                                                             "digests": {"old": ["a"], "new": ["b", "c"]}}]


def test_a_tie_lists_the_most_recently_modified_build() -> None:
    snap = _cluster(_node("a", (_info("q:8b", "older", "2026-01-01T00:00:00+00:00"),)),
                    _node("b", (_info("q:8b", "newer", "2026-06-01T00:00:00+00:00"),)))
    assert tags_body(snap)["models"][0]["digest"] == "newer"


def test_no_conflict_when_the_nodes_agree_and_no_modified_at_reads_as_the_epoch() -> None:
    snap = _cluster(_node("a", (_info("q:8b", "d", ""),)), _node("b", (_info("q:8b", "d", ""),)))
    assert model_conflicts(snap) == []
    assert tags_body(snap)["models"][0]["modified_at"] == "1970-01-01T00:00:00Z"


def test_ps_sums_sizes_and_takes_the_latest_expiry_across_offsets() -> None:
    details = ModelDetails("gguf", "qwen3", ("qwen3",), "8.2B", "Q4_K_M")
    a = LoadedModel("q:8b", 100, 100, "2026-12-01T12:00:00+00:00", "d", details, 4096)
    b = LoadedModel("q:8b", 50, 0, "2026-12-01T13:30:00+02:00", "d", details, 8192)  # 11:30 UTC: earlier
    body = ps_body(_cluster(_node("a", (), (a,)), _node("b", (), (b,))))
    (entry,) = body["models"]
    assert (entry["size"], entry["size_vram"], entry["context_length"]) == (150, 100, 8192)
    assert entry["expires_at"] == "2026-12-01T12:00:00+00:00" and entry["digest"] == "d"
    assert entry["nodes"] == ["a", "b"] and entry["details"]["family"] == "qwen3"
