"""Hydra, the service: its history writer survives a bad event, settings changed at once are all kept,
and a prompt is classified once per submit."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hydra import reasoning, task_intake, tiers
from hydra.history import HistoryUnavailableError
from hydra.service import Hydra
from hydra.sollol.errors import TaskError
from hydra.sollol.types import FailureKind, TaskEvent, TaskStatus

TIMEOUT = 20.0
COMMIT_WAIT_S = 10.0  # submit()'s wait for its history row, shortened from 30 s


def _env(tmp_path: Path) -> dict[str, str]:
    # No node at all: every task ends at once with no route, which is all these tests need of the router.
    return {"HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false",
            "HYDRA_GATEWAY_PORT": "0"}


@pytest.fixture
def hydra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hydra]:
    monkeypatch.setattr(task_intake, "QUEUED_COMMIT_WAIT_S", COMMIT_WAIT_S)
    h = Hydra.from_env(_env(tmp_path), no_route_wait_s=0.2).start()
    try:
        yield h
    finally:
        h.close()


# --- the history writer ---

def _submit_timed(h: Hydra, prompt: str, **fields: Any) -> tuple[str, float]:
    started = time.monotonic()
    handle = h.submit(prompt, **fields)
    return handle.id, time.monotonic() - started


def test_the_writer_survives_an_event_it_cannot_record(hydra: Hydra, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    record = hydra.history.write_event

    def failing(event: TaskEvent) -> None:
        if event.task.prompt == "poison":
            raise RuntimeError("a value history cannot store")
        record(event)

    monkeypatch.setattr(hydra.history, "write_event", failing)
    with caplog.at_level(logging.ERROR, logger="hydra"):
        # Its own submit is released (refused: a task is never run without its row) ...
        started = time.monotonic()
        with pytest.raises(HistoryUnavailableError) as refused:
            hydra.submit("poison")
        assert time.monotonic() - started < COMMIT_WAIT_S / 2
        poisoned = refused.value.task_id
        assert poisoned is not None
        # ... and every later submit returns at once with its row written: the writer is still there.
        for i in range(3):
            task_id, waited = _submit_timed(hydra, f"fine {i}")
            assert waited < COMMIT_WAIT_S / 2
            row = hydra.history.get_task(task_id)
            assert row is not None and row["prompt"] == f"fine {i}"
    assert hydra.history.get_task(poisoned) is None
    assert any(poisoned in r.getMessage() and "queued" in r.getMessage() for r in caplog.records)


def test_options_json_cannot_write_are_recorded_not_fatal(hydra: Hydra) -> None:
    """The case that used to kill the writer: an options dict with a tuple key (json.dumps refuses it)."""
    odd, waited = _submit_timed(hydra, "odd options", options={("a", 1): 2})
    assert waited < COMMIT_WAIT_S / 2
    row = hydra.history.get_task(odd)
    assert row is not None and row["options"]["options"] == {"('a', 1)": 2}
    after, waited = _submit_timed(hydra, "after the odd one")
    assert waited < COMMIT_WAIT_S / 2 and hydra.history.get_task(after) is not None


# --- settings ---

def test_two_settings_changed_at_once_are_both_kept(hydra: Hydra, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one change is being applied to the router, another arrives on another thread: neither is lost,
    in the running settings or in the saved ones."""
    real_update = hydra.router.update_config
    second: list[threading.Thread] = []

    def update_while_another_changes(**changes: Any) -> Any:
        if not second:  # the first change, between reading the settings and adopting them
            thread = threading.Thread(target=hydra.update_settings, args=({"HYDRA_REASONING_MODE": "deep"},))
            second.append(thread)
            thread.start()
            thread.join(0.5)  # finishes at once if nothing serialises the changes; else it waits for this one
        return real_update(**changes)

    monkeypatch.setattr(hydra.router, "update_config", update_while_another_changes)
    hydra.update_settings({"SOLLOL_MIN_VRAM_MB": 1234})
    second[0].join(TIMEOUT)
    assert not second[0].is_alive()
    assert (hydra.settings["SOLLOL_MIN_VRAM_MB"], hydra.settings["HYDRA_REASONING_MODE"]) == (1234, "deep")
    saved = hydra.history.load_settings()
    assert (saved["SOLLOL_MIN_VRAM_MB"], saved["HYDRA_REASONING_MODE"]) == ("1234", "deep")
    assert hydra.router.config.min_vram_mb == 1234


# --- classification ---

def test_a_prompt_is_classified_once_per_submit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = tiers.classify

    def counting(prompt: str) -> str:
        calls.append(prompt)
        return real(prompt)

    # Everywhere a classifier is looked up: the service, the reasoning engine, and the router built below.
    monkeypatch.setattr(tiers, "classify", counting)
    monkeypatch.setattr(reasoning, "classify", counting)
    h = Hydra.from_env(_env(tmp_path), no_route_wait_s=0.2).start()
    try:
        handle = h.submit("Write a Python function that reverses a list")
        assert calls == ["Write a Python function that reverses a list"]
        assert handle.task.task_type == "code"
        calls.clear()
        h.submit(messages=[{"role": "user", "content": "Prove that the square root of 2 is irrational"}])
        assert len(calls) == 1
        calls.clear()
        assert h.submit("Write a Python function", task_type="general").task.task_type == "general"
        assert calls == []
    finally:
        h.close()


@pytest.mark.parametrize(("prompt", "messages", "field"), [
    ("", [{"role": "user", "content": 5}], "messages[0].content"),
    ("", [{"role": "user", "content": {"a": 1}}], "messages[0].content"),
    ("", "hello", "messages"),
    (42, None, "prompt"),
], ids=["content-number", "content-object", "messages-string", "prompt-number"])
def test_a_bad_prompt_or_message_is_the_callers_task_error(hydra: Hydra, prompt: Any, messages: Any,
                                                            field: str) -> None:
    with pytest.raises(TaskError, match=re.escape(field)):
        hydra.submit(prompt, messages=messages)


def test_a_message_without_content_is_not_a_crash(hydra: Hydra) -> None:
    # content is optional in Ollama's messages: the classifier reads it as no text
    handle = hydra.submit(messages=[{"role": "user", "content": None}, {"role": "user", "content": "Hi"}],
                          max_tokens=3)
    assert handle.result(timeout=30).status.value in ("done", "failed")


def test_a_task_on_a_cluster_with_no_node_ends_at_once_with_no_route(hydra: Hydra) -> None:
    started = time.monotonic()
    result = hydra.submit("Hello", max_tokens=3).result(timeout=10)
    assert result.status is TaskStatus.FAILED and result.failure is FailureKind.NO_ROUTE, result
    assert time.monotonic() - started < 5.0, "an empty cluster must not hold the task"
