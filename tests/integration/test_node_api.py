"""The embedded node seen through the official `ollama` client, as Ollama is seen.

One in-process NodeServer (real SmolLM2-135M on llama.cpp) serves the whole
module on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import httpx
import ollama
import pytest

from hydra.node import DEFAULT_MODEL_NAME, NodeServer

pytestmark = pytest.mark.model

MODEL = DEFAULT_MODEL_NAME
SYSTEM = "You are a helpful assistant."
STORY = "Write a very long story about a dragon."


@pytest.fixture(scope="module")
def node():
    server = NodeServer(port=0).start()
    # The very first generation reports the model load, like a cold Ollama.
    server.first = ollama.Client(host=server.url, timeout=60).generate(
        model=MODEL, prompt="Hello", options={"num_predict": 2})
    yield server
    server.stop()


@pytest.fixture
def client(node):
    with ollama.Client(host=node.url, timeout=60) as c:
        yield c


@pytest.fixture
def http(node):
    with httpx.Client(base_url=node.url, timeout=60) as c:
        yield c


def wait_until(predicate, timeout: float, what: str) -> float:
    """Poll `predicate` until true; return the seconds it took."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - t0


# --- the task typed in the browser ---------------------------------------------

def test_capital_of_france_streams_paris(client):
    chunks = list(client.chat(
        model=MODEL, stream=True, options={"temperature": 0, "seed": 42},
        messages=[{"role": "system", "content": SYSTEM},
                  {"role": "user", "content": "What is the capital of France?"}]))
    pieces = [c.message.content for c in chunks if not c.done and c.message.content]
    final = chunks[-1]
    assert len(pieces) > 1
    assert "Paris" in "".join(pieces)
    assert final.done and final.done_reason == "stop"
    assert all(not c.done for c in chunks[:-1])
    assert 0 < len(pieces) <= final.eval_count


# --- metadata endpoints --------------------------------------------------------

def test_root_and_version(http):
    r = http.get("/")
    assert r.status_code == 200 and r.text == "Ollama is running"
    assert http.head("/").status_code == 200
    r = http.get("/api/version")
    assert r.status_code == 200 and r.json()["version"].count(".") == 2


def test_list(client, node):
    (m,) = client.list().models
    assert m.model == MODEL
    assert m.size == node.info.size and m.size > 50_000_000
    assert len(m.digest) == 64 and m.modified_at is not None
    d = m.details
    assert (d.format, d.family, d.families) == ("gguf", "llama", ["llama"])
    assert (d.parameter_size, d.quantization_level) == ("135M", "Q4_1")


def test_ps(client):
    (m,) = client.ps().models
    assert (m.model, m.name, m.size_vram) == (MODEL, MODEL, 0)
    assert m.size > 50_000_000 and m.expires_at is not None
    assert m.context_length == 4096
    assert m.details.quantization_level == "Q4_1"


def test_show(client):
    s = client.show(MODEL)
    assert s.capabilities == ["completion"]
    assert s.details.parameter_size == "135M"
    assert "<|im_start|>" in s.template
    assert s.modelinfo["general.architecture"] == "llama"
    assert s.modelinfo["llama.context_length"] == 8192
    assert 130_000_000 < s.modelinfo["general.parameter_count"] < 140_000_000


# --- generation ----------------------------------------------------------------

def test_first_request_reported_the_load(node, client):
    assert node.first.load_duration > 10_000_000  # the real load, in ns
    assert node.first.total_duration >= node.first.load_duration
    later = client.generate(model=MODEL, prompt="Hello", options={"num_predict": 2})
    assert later.load_duration == 0


def test_generate_not_streaming_respects_num_predict(client):
    r = client.generate(model=MODEL, prompt=STORY, options={"num_predict": 8, "seed": 1})
    assert r.done and r.done_reason == "length"
    assert r.eval_count == 8 and r.response
    assert r.prompt_eval_count > 5
    assert r.total_duration >= r.prompt_eval_duration + r.eval_duration > 0


def test_generate_streaming_timings_match_what_the_client_sees(client):
    stamps, pieces, final = [], [], None
    for c in client.generate(model=MODEL, prompt=STORY, stream=True,
                             options={"num_predict": 48, "seed": 1}):
        if c.done:
            final = c
        else:
            stamps.append(time.monotonic())
            pieces.append(c.response)
    assert final is not None and final.done_reason == "length"
    assert final.eval_count == 48 and len(pieces) <= 48
    reported = final.eval_count / (final.eval_duration / 1e9)
    seen = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 5 < reported < 5000, reported
    assert 0.5 < seen / reported < 2.0, (seen, reported)


def test_generate_raw_and_system(client):
    raw = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                          options={"num_predict": 4, "temperature": 0})
    assert raw.prompt_eval_count < 10  # no chat template around it
    templated = client.generate(model=MODEL, prompt="The capital of France is",
                                system=SYSTEM, options={"num_predict": 4, "temperature": 0})
    assert templated.prompt_eval_count > raw.prompt_eval_count + 5


def test_chat_not_streaming_with_history(client):
    r = client.chat(model=MODEL, options={"temperature": 0, "num_predict": 40},
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": "What is the capital of Italy?"},
                              {"role": "assistant", "content": "The capital of Italy is Rome."},
                              {"role": "user", "content": "What is the capital of France?"}])
    assert r.message.role == "assistant" and "Paris" in r.message.content
    assert r.done_reason in ("stop", "length") and 0 < r.eval_count <= 40


def test_stop_option_and_seed(client):
    opts = {"seed": 7, "temperature": 1.0, "num_predict": 24}
    a = client.generate(model=MODEL, prompt=STORY, options=opts)
    b = client.generate(model=MODEL, prompt=STORY, options=opts)
    assert a.response == b.response
    stop_at = a.response.split()[3]
    c = client.generate(model=MODEL, prompt=STORY, options={**opts, "stop": [stop_at]})
    assert stop_at not in c.response and c.done_reason == "stop"
    assert c.eval_count < a.eval_count


def test_empty_prompt_loads_like_ollama(client):
    r = client.generate(model=MODEL)
    assert r.done and r.done_reason == "load"


# --- errors ----------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda c: c.chat(model="nope:1b", messages=[{"role": "user", "content": "hi"}]),
    lambda c: list(c.chat(model="nope:1b", stream=True,
                          messages=[{"role": "user", "content": "hi"}])),
    lambda c: c.generate(model="nope:1b", prompt="hi"),
    lambda c: list(c.generate(model="nope:1b", prompt="hi", stream=True)),
    lambda c: c.show("nope:1b"),
], ids=["chat", "chat-stream", "generate", "generate-stream", "show"])
def test_unknown_model_is_404(client, call):
    with pytest.raises(ollama.ResponseError) as e:
        call(client)
    assert e.value.status_code == 404
    assert e.value.error == 'model "nope:1b" not found, try pulling it first'


def test_thinking_is_refused(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, think=True, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400
    assert e.value.error == f'"{MODEL}" does not support thinking'


@pytest.mark.parametrize("path,body,status", [
    ("/api/chat", b"{not json", 400),
    ("/api/generate", b'{"prompt": "hi"}', 400),
    ("/api/generate", b'{"model": "smollm2:135m", "options": {"temperature": "hot"}}', 400),
    ("/api/chat", b'{"model": "smollm2:135m", "messages": [{"role": "robot", "content": "x"}]}',
     400),
    ("/api/unknown-route", b'{"model": "smollm2:135m", "input": "hi"}', 404),
    ("/api/nowhere", b"", 404),
], ids=["bad-json", "no-model", "bad-option", "bad-role", "unknown-route", "nowhere"])
def test_bad_requests(http, path, body, status):
    r = http.post(path, content=body)
    assert r.status_code == status
    assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_embeddings_are_refused_as_ollama_refuses_a_model_that_does_not_embed(client, http):
    """SmolLM2 is a chat model, and no GGUF embedding model ships in a package as it does: Ollama's 400."""
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed(model=MODEL, input=["hello", "world"])
    assert (refused.value.status_code, refused.value.error) == (400, f"{MODEL} does not support embedding")
    with pytest.raises(ollama.ResponseError) as legacy:
        client.embeddings(model=MODEL, prompt="hello")
    assert (legacy.value.status_code, legacy.value.error) == (400, f"{MODEL} does not support embedding")
    with pytest.raises(ollama.ResponseError) as other:
        client.embed(model="nomic-embed-text", input="hello")
    assert other.value.status_code == 404
    assert http.post("/api/embed", content=b"{not json").status_code == 400


def test_tags_digest_is_the_sha256_of_the_model_file(client, node):
    (m,) = client.list().models
    with open(node.info.path, "rb") as f:
        assert m.digest == hashlib.file_digest(f, "sha256").hexdigest()


def test_wrong_method_is_404(http):
    assert http.get("/api/chat").status_code == 404


# --- one at a time, first come first served ---------------------------------------

def _stream_chat(url, prompt, n, log, name):
    with ollama.Client(host=url, timeout=60) as c:
        for chunk in c.chat(model=MODEL, stream=True, options={"num_predict": n, "seed": 3},
                            messages=[{"role": "user", "content": prompt}]):
            log.append((time.monotonic(), name, chunk))


def test_concurrent_tasks_are_served_one_after_the_other_in_order(node):
    log: list = []
    first = threading.Thread(target=_stream_chat, args=(node.url, STORY, 60, log, "a"))
    first.start()
    wait_until(lambda: any(name == "a" for _, name, _ in log), 30, "a's first token")
    others = []
    for i, name in enumerate("bc", start=1):
        t = threading.Thread(target=_stream_chat, args=(node.url, STORY, 20, log, name))
        t.start()
        wait_until(lambda i=i: node.engine.waiting() == i, 10, f"{name} to queue")
        others.append(t)
    for t in [first, *others]:
        t.join(60)
        assert not t.is_alive()
    by_name = {n: [(ts, c) for ts, name, c in log if name == n] for n in "abc"}
    for n, chunks in by_name.items():
        assert chunks[-1][1].done, f"{n} did not finish"
        assert chunks[-1][1].eval_count > 0
    # Served strictly one after the other, in arrival order.
    spans = [(chunks[0][0], chunks[-1][0]) for chunks in by_name.values()]
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]


# --- a client that leaves stops its generation ---------------------------------------

def _leave_after(url, tokens, body):
    with httpx.Client(base_url=url, timeout=60) as h, \
            h.stream("POST", "/api/generate", json=body) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i + 1 >= tokens:
                break


def test_disconnect_mid_stream_stops_generation(node, client):
    # Unstopped, this generation runs 600 tokens (about 10 s on 2 cores).
    body = {"model": MODEL, "prompt": STORY, "options": {"num_predict": 600, "seed": 1}}
    generations = node.engine.generations
    _leave_after(node.url, 3, body)
    wait_until(lambda: not node.engine.busy(), 10, "the engine to stop")
    assert node.engine.generations == generations + 1
    stopped = node.engine.last
    assert stopped.cancelled and 3 <= stopped.eval_count < 60
    r = client.generate(model=MODEL, prompt="Hi", options={"num_predict": 4})
    assert r.done and node.engine.generations == generations + 2


def test_disconnect_while_queued_is_never_served(node, client):
    body = {"model": MODEL, "prompt": STORY, "options": {"num_predict": 600, "seed": 1}}
    generations = node.engine.generations
    running = threading.Thread(target=_leave_after, args=(node.url, 40, body))
    running.start()
    wait_until(node.engine.busy, 10, "the first generation")
    # A raw socket: an HTTP client would block on the response headers,
    # which only come with the first token.
    payload = json.dumps(body).encode()
    host, port = node.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        wait_until(lambda: node.engine.waiting() == 1, 10, "the second to queue")
    wait_until(lambda: node.engine.waiting() == 0, 5, "the queued one to leave")
    running.join(30)
    assert not running.is_alive()
    wait_until(lambda: not node.engine.busy(), 10, "the engine to stop")
    assert node.engine.generations == generations + 1
    assert node.engine.last.cancelled and node.engine.last.eval_count < 120
    r = client.generate(model=MODEL, prompt="Hi", options={"num_predict": 4})
    assert r.done and node.engine.generations == generations + 2
