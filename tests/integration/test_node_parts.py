"""The embedded node's pure parts, without loading a model: tables and the FIFO lock."""

from __future__ import annotations

import threading
import time

import pytest

from hydra.node import api
from hydra.node.engine import EngineError, sampling_request
from hydra.node.fifo import Abandoned, FairLock
from hydra.node.model_files import ServedModel, bundled_model_path, human_parameters
from hydra.node.server import is_loopback

OURS = "smollm2:135m"


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("127.255.255.254", True), ("localhost", True),
    ("::1", True), ("[::1]", True), ("example.invalid", False), ("", False),
], ids=lambda v: str(v))
def test_is_loopback(host, ok):
    assert is_loopback(host) is ok


@pytest.mark.parametrize("options,fmt,expected", [
    (None, None, {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
                  "repeat_penalty": 1.1, "repeat_last_n": 64}),
    ({"num_predict": 8}, None, {"max_tokens": 8}),
    ({"num_predict": -1}, None, {"max_tokens": -1}),
    ({"num_predict": -2}, None, {"max_tokens": -1}),
    ({"seed": 42, "temperature": 0}, None, {"seed": 42, "temperature": 0}),
    ({"seed": -1}, None, {}),
    ({"stop": "\n"}, None, {"stop": ["\n"]}),
    ({"stop": ["a", "b"]}, None, {"stop": ["a", "b"]}),
    ({"num_keep": 4, "num_ctx": 99999, "num_thread": 8}, None, {"n_keep": 4}),
    (None, "json", {"response_format": {"type": "json_object"}}),
    (None, {"type": "object"}, {"json_schema": {"type": "object"}}),
], ids=["defaults", "num_predict", "unlimited", "fill-context", "seed", "random-seed",
        "stop-str", "stop-list", "load-time-ignored", "json", "schema"])
def test_sampling_request(options, fmt, expected):
    req = sampling_request(options, fmt)
    for key, value in expected.items():
        assert req[key] == value
    assert "num_ctx" not in req and "n_ctx" not in req
    if options and options.get("seed", 0) < 0:
        assert "seed" not in req


@pytest.mark.parametrize("options,fmt", [
    ({"temperature": "hot"}, None), ({"num_predict": 1.5}, None), ({"seed": True}, None),
    ({"stop": [1]}, None), (None, "yaml"),
], ids=["temp-str", "num_predict-float", "seed-bool", "stop-int", "format-yaml"])
def test_sampling_request_refuses(options, fmt):
    with pytest.raises(EngineError) as e:
        sampling_request(options, fmt)
    assert e.value.status == 400


@pytest.mark.parametrize("body,status,message", [
    ({}, 400, "model is required"),
    ({"model": "llama3:8b"}, 404, 'model "llama3:8b" not found, try pulling it first'),
    ({"model": OURS, "think": True}, 400, f'"{OURS}" does not support thinking'),
    ({"model": OURS, "think": "high"}, 400, f'"{OURS}" does not support thinking'),
    ({"model": OURS, "messages": "hi"}, 400, "messages must be a list"),
    ({"model": OURS, "messages": [{"role": "tool", "content": "x"}]}, 400,
     'unsupported message role "tool"'),
    ({"model": OURS, "options": []}, 400, "options must be a JSON object"),
], ids=["no-model", "unknown", "think", "think-level", "messages-str", "tool-role",
        "options-list"])
def test_parse_chat_refuses_like_ollama(body, status, message):
    with pytest.raises(api.ApiError) as e:
        api.parse_generate(body, OURS, chat=True)
    assert e.value.status == status and str(e.value).startswith(message)


@pytest.mark.parametrize("body,messages,prompt", [
    ({"prompt": "hi"}, [{"role": "user", "content": "hi"}], None),
    ({"prompt": "hi", "system": "be brief"},
     [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], None),
    ({"prompt": "hi", "raw": True}, None, "hi"),
    ({}, None, None),
], ids=["templated", "system", "raw", "empty"])
def test_parse_generate(body, messages, prompt):
    call = api.parse_generate({"model": OURS, **body}, OURS, chat=False)
    assert (call.messages, call.prompt) == (messages, prompt)
    assert call.empty is (messages is None and prompt is None)
    assert call.stream is True


def test_model_name_matching():
    assert api.resolve_model({"model": "SmolLM2:135M"}, OURS) == OURS
    assert api.resolve_model({"model": "tiny"}, "tiny:latest") == "tiny:latest"
    with pytest.raises(api.ApiError):
        api.resolve_model({"model": "smollm2"}, OURS)


@pytest.mark.parametrize("n,label", [
    (134_515_008, "135M"), (1_235_814_400, "1.2B"), (7_000_000_000, "7B"),
    (494_032_768, "494M"), (70_553_706_496, "70.6B"), (12_345, "12.3K"),
])
def test_human_parameters(n, label):
    assert human_parameters(n) == label


def test_gguf_header_of_the_bundled_model():
    info = ServedModel.load(bundled_model_path(), OURS)
    assert info.details() == {"parent_model": "", "format": "gguf", "family": "llama",
                              "families": ["llama"], "parameter_size": "135M",
                              "quantization_level": "Q4_1"}
    assert info.context_length == 8192
    assert info.parameter_count == 134_515_008
    assert "<|im_start|>" in info.chat_template
    assert info.model_info()["tokenizer.ggml.tokens"] is None  # long arrays left out
    assert info.kv_cache_bytes(4096) == 2 * 2 * 4096 * 30 * 64 * 3


# --- FairLock ------------------------------------------------------------------------

def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _line_up(lock: FairLock, n: int, order: list[int],
             give_up: dict[int, threading.Event] | None = None) -> list[threading.Thread]:
    """n threads wait on `lock` one after the other; each records its index when served."""
    threads = []
    for i in range(n):
        flag = (give_up or {}).get(i)

        def run(i=i, flag=flag):
            try:
                lock.acquire(abandoned=flag.is_set if flag else None, poll_s=0.01)
            except Abandoned:
                return
            order.append(i)
            lock.release()
        threads.append(threading.Thread(target=run))
        threads[-1].start()
        _wait_for(lambda i=i: lock.waiting() == i + 1)  # arrival order is known
    return threads


def test_fair_lock_serves_in_arrival_order():
    lock, order = FairLock(), []
    lock.acquire()
    threads = _line_up(lock, 5, order)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.busy() and lock.waiting() == 0


def test_fair_lock_waiter_that_gives_up_is_skipped():
    lock, order = FairLock(), []
    lock.acquire()
    leave = threading.Event()
    threads = _line_up(lock, 3, order, give_up={1: leave})
    leave.set()
    _wait_for(lambda: lock.waiting() == 2)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 2]
    assert not lock.busy()


def test_fair_lock_release_unheld_is_an_error():
    with pytest.raises(RuntimeError):
        FairLock().release()
