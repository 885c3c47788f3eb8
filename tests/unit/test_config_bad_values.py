"""Every setting refuses a bad value with one short message naming the variable, the value and what is
allowed: never a traceback, never accepted in silence (issue 13, item 11). Good values next to them
keep working: an IPv6 node, credentials in a node URL, OLLAMA_HOST=0.0.0.0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hydra.config import SETTINGS, SETTINGS_BY_NAME, load_settings, parse_value
from hydra.service import Hydra
from hydra.sollol.addresses import shown
from hydra.sollol.config import ENV_BY_NAME, MAX_VALUE_CHARS, SollolConfig, format_node, parse_node, parse_nodes
from hydra.sollol.errors import ConfigError
from hydra.sollol.types import NodeSpec

MAX_MESSAGE_CHARS = 400
HUGE = 100_000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)


def _nodes(count: int) -> str:
    return ",".join(f"n{i}=http://127.0.0.{i + 1}:11434" for i in range(count))


# (variable, value, id): each is refused by load_settings (and by SollolConfig.from_env for the
# engine's variables).
BAD = [
    # SOLLOL_NODES: URLs
    ("SOLLOL_NODES", "http://[::1", "node-ipv6-unclosed"),
    ("SOLLOL_NODES", "a=http://[::1:11434", "node-ipv6-unclosed-port"),
    ("SOLLOL_NODES", "a=http://[::1]x:11434", "node-ipv6-junk-after"),
    ("SOLLOL_NODES", "a=http://[127.0.0.2]:11434", "node-ipv4-in-brackets"),
    ("SOLLOL_NODES", "a=http://[zz::1]:11434", "node-ipv6-not-hex"),
    ("SOLLOL_NODES", "a=http://::1:11434", "node-ipv6-no-brackets"),
    ("SOLLOL_NODES", "a=http://" + "x" * HUGE, "node-huge-100k"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:0", "node-port-0"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:65536", "node-port-65536"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:99999999", "node-port-huge"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:-1", "node-port-negative"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:+80", "node-port-plus"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:\uff11\uff11\uff14\uff13\uff14", "node-port-fullwidth"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:", "node-port-empty"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434:11435", "node-two-ports"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434/api", "node-path"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434/v1/", "node-path-slash"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434?x=1", "node-query"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434#top", "node-fragment"),
    ("SOLLOL_NODES", "a=http://[::1]:11434/v1", "node-ipv6-path"),
    ("SOLLOL_NODES", "a=ftp://127.0.0.2:11434", "node-scheme-ftp"),
    ("SOLLOL_NODES", "a=ws://127.0.0.2:11434", "node-scheme-ws"),
    ("SOLLOL_NODES", "a=http://999.1.1.1:11434", "node-ipv4-octet"),
    ("SOLLOL_NODES", "a=http://1.2.3:11434", "node-ipv4-three-numbers"),
    ("SOLLOL_NODES", "a=http://-bad-.lan:11434", "node-hostname-hyphen"),
    ("SOLLOL_NODES", "a=http://gpu..lan:11434", "node-hostname-empty-label"),
    ("SOLLOL_NODES", "a=http://" + "x" * 64 + ".lan:11434", "node-hostname-long-label"),
    ("SOLLOL_NODES", "a=http://b\u00fccher.lan:11434", "node-hostname-unicode"),
    ("SOLLOL_NODES", "a=http://user:pw@:11434", "node-credentials-no-host"),
    ("SOLLOL_NODES", "a=http://@127.0.0.2:11434", "node-empty-credentials"),
    ("SOLLOL_NODES", "a=http://0.0.0.0:11434", "node-unspecified-v4"),
    ("SOLLOL_NODES", "a=http://[::]:11434", "node-unspecified-v6"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434\x07", "node-control-char"),
    ("SOLLOL_NODES", "a=", "node-no-url"),
    ("SOLLOL_NODES", "=http://127.0.0.2:11434", "node-empty-name"),
    # SOLLOL_NODES: names and attributes
    ("SOLLOL_NODES", "bad name=http://127.0.0.2:11434", "name-space"),
    ("SOLLOL_NODES", "n/a=http://127.0.0.2:11434", "name-slash"),
    ("SOLLOL_NODES", "x" * 65 + "=http://127.0.0.2:11434", "name-65-chars"),
    ("SOLLOL_NODES", "caf\u00e9=http://127.0.0.2:11434", "name-unicode"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=0", "slots-0"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=257", "slots-257"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=8000", "slots-8000"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=\uff11\uff12", "slots-fullwidth"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=1_0", "slots-underscore"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=2.5", "slots-fraction"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=" + "9" * 5000, "slots-5000-digits"),
    ("SOLLOL_NODES", "a=127.0.0.2;slots=2;slots=3", "slots-twice"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=inf", "model-b-inf"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=nan", "model-b-nan"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=1e400", "model-b-overflow"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=-1", "model-b-negative"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=0", "model-b-zero"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=2001", "model-b-2001"),
    ("SOLLOL_NODES", "a=127.0.0.2;max_model_b=\uff17\uff10", "model-b-fullwidth"),
    ("SOLLOL_NODES", "a=127.0.0.2;vram_mb=0", "vram-zero"),
    ("SOLLOL_NODES", "a=127.0.0.2;vram_mb=99999999999", "vram-huge"),
    ("SOLLOL_NODES", "a=127.0.0.2;vram_mb=\uff18\uff10\uff10\uff10", "vram-fullwidth"),
    ("SOLLOL_NODES", "a=127.0.0.2;gpu=maybe", "gpu-word"),
    ("SOLLOL_NODES", "a=127.0.0.2;local=2", "local-number"),
    # SOLLOL_NODES: duplicates and size
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434,b=http://127.0.0.2:11434", "two-names-one-url"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434,b=http://u:p@127.0.0.2:11434", "two-names-one-url-credentials"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434,b=HTTP://127.0.0.2:11434/", "two-names-one-url-spelt-twice"),
    ("SOLLOL_NODES", "a=http://127.0.0.2:11434,a=http://127.0.0.3:11434", "one-name-two-urls"),
    ("SOLLOL_NODES", _nodes(65), "65-nodes"),
    ("SOLLOL_NODES", "a=127.0.0.2," * 2000, "over-16k"),
    # OLLAMA_HOST
    ("OLLAMA_HOST", "http://[::1", "ollama-ipv6-unclosed"),
    ("OLLAMA_HOST", "x" * HUGE, "ollama-huge"),
    ("OLLAMA_HOST", "127.0.0.1:0", "ollama-port-0"),
    ("OLLAMA_HOST", "127.0.0.1:65536", "ollama-port-65536"),
    ("OLLAMA_HOST", "127.0.0.1:\uff11\uff11\uff14\uff13\uff14", "ollama-port-fullwidth"),
    ("OLLAMA_HOST", "gpu-box.lan/ollama", "ollama-path"),
    ("OLLAMA_HOST", "http://127.0.0.1:11434?x=1", "ollama-query"),
    ("OLLAMA_HOST", "ftp://127.0.0.1", "ollama-scheme"),
    ("OLLAMA_HOST", "999.1.1.1", "ollama-bad-ipv4"),
    ("OLLAMA_HOST", "bad host", "ollama-space"),
    ("OLLAMA_HOST", "http://user:pw@", "ollama-no-host"),
    # numbers
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "\uff11\uff16", "concurrency-fullwidth"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "1_0", "concurrency-underscore"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "1e3", "concurrency-exponent"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "16.0", "concurrency-fraction"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "0x10", "concurrency-hex"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "1025", "concurrency-1025"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "9" * HUGE, "concurrency-100k-digits"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", " ", "concurrency-blank"),
    ("SOLLOL_MIN_VRAM_MB", "\uff11\uff10\uff10", "min-vram-fullwidth"),
    ("SOLLOL_MIN_VRAM_MB", "1_000", "min-vram-underscore"),
    ("SOLLOL_MIN_VRAM_MB", "1048577", "min-vram-above-1tb"),
    ("SOLLOL_MIN_VRAM_MB", "99999999999999999999", "min-vram-huge"),
    ("SOLLOL_MIN_VRAM_MB", "inf", "min-vram-inf"),
    ("SOLLOL_MIN_SUCCESS_RATE", "nan", "success-rate-nan"),
    ("SOLLOL_MIN_SUCCESS_RATE", "inf", "success-rate-inf"),
    ("SOLLOL_MIN_SUCCESS_RATE", "-inf", "success-rate-minus-inf"),
    ("SOLLOL_MIN_SUCCESS_RATE", "\uff10.\uff15", "success-rate-fullwidth"),
    ("SOLLOL_MIN_SUCCESS_RATE", "0_5", "success-rate-underscore"),
    ("SOLLOL_MIN_SUCCESS_RATE", "1.01", "success-rate-above-1"),
    ("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "0", "first-token-zero"),
    ("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "inf", "first-token-inf"),
    ("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "3601", "first-token-above-max"),
    ("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "\uff11\uff10", "first-token-fullwidth"),
    ("HYDRA_MAX_THINKING_TOKENS", "\uff12\uff10\uff10", "thinking-tokens-fullwidth"),
    ("HYDRA_MAX_THINKING_TOKENS", "200001", "thinking-tokens-above-max"),
    ("HYDRA_MAX_THINKING_TOKENS", "2_000", "thinking-tokens-underscore"),
    ("HYDRA_MAX_TOKENS", "0", "max-tokens-zero"),
    ("HYDRA_MAX_TOKENS", "131073", "max-tokens-above-max"),
    ("HYDRA_MAX_TOKENS", "1e3", "max-tokens-float"),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "nan", "threshold-nan"),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "inf", "threshold-inf"),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "\uff19", "threshold-fullwidth"),
    ("HYDRA_GATEWAY_PORT", "\uff18\uff10\uff18\uff10", "port-fullwidth"),
    ("HYDRA_GATEWAY_PORT", "8_080", "port-underscore"),
    ("HYDRA_GATEWAY_PORT", "65536", "port-65536"),
    ("HYDRA_GATEWAY_PORT", "-1", "port-negative"),
    # words
    ("SOLLOL_DEFAULT_ROUTING_MODE", "\uff46\uff41\uff53\uff54", "mode-fullwidth"),
    ("SOLLOL_DEFAULT_ROUTING_MODE", "fast" * 5000, "mode-huge"),
    ("SOLLOL_PARALLEL_REQUESTS", "2", "parallel-two"),
    ("SOLLOL_VRAM_MONITORING", "sometimes", "vram-monitoring-word"),
    ("SOLLOL_PREFIX_AFFINITY", "maybe", "prefix-affinity-word"),
    ("SOLLOL_DISCOVER_LOCALHOST", "nope", "discover-localhost-word"),
    ("SOLLOL_DISCOVERY_CIDR", "\uff11\uff12\uff17.0.0.0/24", "cidr-fullwidth"),
    ("SOLLOL_DISCOVERY_CIDR", "300.0.0.0/24", "cidr-bad-octet"),
    ("SOLLOL_DISCOVERY_CIDR", "::1/128", "cidr-ipv6"),
    ("HYDRA_REASONING_MODE", "max", "reasoning-mode-word"),
    ("HYDRA_REASONING_MODEL", "qwen3 14b", "reasoning-model-space"),
    ("HYDRA_REASONING_MODEL", "q" * 300, "reasoning-model-long"),
    ("HYDRA_REASONING_MODEL", "qwen3\x00", "reasoning-model-nul"),
    ("HYDRA_USE_REASONING_MODEL", "yes please", "use-reasoning-model-words"),
    ("HYDRA_EMBEDDED_NODE", "maybe", "embedded-word"),
    ("HYDRA_ACCESS_LOG", "quiet", "access-log-word"),
    ("HYDRA_DB", " ", "db-blank"),
    ("HYDRA_DB", "/tmp/" + "d" * 5000, "db-long"),
    ("HYDRA_DB", "/tmp/hydra\x00.db", "db-nul"),
    # bind host
    ("HYDRA_GATEWAY_HOST", "999.1.1.1", "bind-bad-ipv4"),
    ("HYDRA_GATEWAY_HOST", "1.2.3", "bind-three-numbers"),
    ("HYDRA_GATEWAY_HOST", "", "bind-empty"),
    ("HYDRA_GATEWAY_HOST", "http://127.0.0.1", "bind-url"),
    ("HYDRA_GATEWAY_HOST", "127.0.0.1:8080", "bind-with-port"),
    ("HYDRA_GATEWAY_HOST", "[::1", "bind-ipv6-unclosed"),
    ("HYDRA_GATEWAY_HOST", "-bad", "bind-hostname-hyphen"),
    ("HYDRA_GATEWAY_HOST", "a..b", "bind-empty-label"),
    ("HYDRA_GATEWAY_HOST", "h" * 300, "bind-too-long"),
    ("HYDRA_GATEWAY_HOST", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "bind-fullwidth"),
    # key and allow-lists
    ("HYDRA_API_KEY", " ", "key-blank"),
    ("HYDRA_API_KEY", "two words", "key-space"),
    ("HYDRA_API_KEY", "k" * 2000, "key-too-long"),
    ("HYDRA_API_KEY", "cl\u00e9", "key-not-ascii"),
    ("HYDRA_ALLOWED_HOSTS", "gpu-box.lan/x", "hosts-path"),
    ("HYDRA_ALLOWED_HOSTS", "b\u00fccher.lan", "hosts-unicode"),
    ("HYDRA_ALLOWED_HOSTS", ",".join(f"h{i}.lan" for i in range(65)), "hosts-65-entries"),
    ("HYDRA_ALLOWED_ORIGINS", "chat.example.com", "origins-no-scheme"),
    ("HYDRA_ALLOWED_ORIGINS", "https://chat.example.com/page", "origins-path"),
]
assert len(BAD) >= 80


def _quoted(variable: str, value: str) -> list[str]:
    """What the message may quote as the value: the whole value, or the one node entry at fault."""
    if variable == "HYDRA_API_KEY":
        return ["'***'", repr(value)] if not value.strip() else ["'***'"]
    parts = [value, *value.split(","), *(e.strip() for e in value.split(","))]
    if variable == "SOLLOL_NODES":     # a bad attribute is quoted alone, after its label "(slots of a)"
        parts += [attr.partition("=")[2] for attr in value.split(";")[1:]]
    return [repr(shown(p)) for p in parts]


def _assert_clear(error: ConfigError, variable: str, value: str) -> None:
    message = str(error)
    assert message.startswith(f"{variable}"), message
    assert error.variable.startswith(variable)
    assert " is not valid: expected " in message            # what is allowed follows
    assert len(message) < MAX_MESSAGE_CHARS, f"{len(message)} characters: {message[:200]}..."
    assert any(q in message for q in _quoted(variable, value)), message
    assert "\x00" not in message and "\x07" not in message


@pytest.mark.parametrize(("variable", "value"), [pytest.param(v, t, id=i) for v, t, i in BAD])
def test_bad_value_is_refused_with_a_short_message_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    _assert_clear(info.value, variable, value)
    if variable in ENV_BY_NAME:      # the engine reads it the same way on its own
        with pytest.raises(ConfigError) as engine:
            SollolConfig.from_env({variable: value})
        assert str(engine.value) == str(info.value)


@pytest.mark.parametrize("name", list(SETTINGS_BY_NAME))
def test_every_setting_refuses_a_value_over_16k_and_control_characters(name: str) -> None:
    for value in ("1" * (MAX_VALUE_CHARS + 1), "a\x01b"):
        with pytest.raises(ConfigError) as info:
            load_settings({name: value})
        message = str(info.value)
        assert message.startswith(name) and len(message) < MAX_MESSAGE_CHARS


def test_credentials_never_appear_in_a_message() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"SOLLOL_NODES": "a=http://admin:hunter2@127.0.0.2:0"})
    assert "hunter2" not in str(info.value) and "admin:***@" in str(info.value)
    long_value = "a=http://admin:" + "hunter2" * 20 + "@127.0.0.2:0"
    with pytest.raises(ConfigError) as info:
        load_settings({"SOLLOL_NODES": long_value})
    assert "hunter2" not in str(info.value)


def test_duplicate_entries_are_both_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_nodes("a=http://127.0.0.2:11434,b=http://127.0.0.2:11434/")
    assert "http://127.0.0.2:11434 is named both a and b" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_nodes("a=http://127.0.0.2:11434,a=http://127.0.0.3:11434")
    assert "http://127.0.0.2:11434 and http://127.0.0.3:11434" in str(info.value)


# --- what must keep working -------------------------------------------------------------------

GOOD_NODES = [
    ("v6=http://[::1]:11434", "http://[::1]:11434", "v6"),
    ("http://[::1]:11500", "http://[::1]:11500", "[::1]:11500"),
    ("v6=[::1]", "http://[::1]:11434", "v6"),
    ("auth=http://user:pw@127.0.0.2", "http://user:pw@127.0.0.2:11434", "auth"),
    ("auth=https://user:p%40ss@127.0.0.2:8443/", "https://user:p%40ss@127.0.0.2:8443", "auth"),
    ("HTTP://GPU-Box.LAN:11434", "http://gpu-box.lan:11434", "gpu-box.lan:11434"),
    ("docker_node=http://ollama_1:11434", "http://ollama_1:11434", "docker_node"),
    ("a.b-c_d=127.0.0.2", "http://127.0.0.2:11434", "a.b-c_d"),
]


@pytest.mark.parametrize(("entry", "url", "name"), GOOD_NODES, ids=[e for e, _, _ in GOOD_NODES])
def test_good_node_entries_keep_working(entry: str, url: str, name: str) -> None:
    spec = parse_node(entry)
    assert (spec.url, spec.name) == (url, name)
    assert parse_node(format_node(spec)) == spec                 # saved and read back unchanged
    settings = load_settings({"SOLLOL_NODES": entry})
    assert settings.nodes == (spec,)
    assert parse_value("SOLLOL_NODES", settings.as_text("SOLLOL_NODES")) == (spec,)


def test_node_attributes_at_their_maxima_are_accepted() -> None:
    spec = parse_node("big=127.0.0.2;slots=256;max_model_b=2000;vram_mb=4194304")
    assert (spec.slots, spec.max_model_b, spec.vram_mb) == (256, 2000.0, 4194304)
    assert len(parse_nodes(_nodes(64))) == 64
    assert SollolConfig.from_env({"SOLLOL_MIN_VRAM_MB": "1048576"}).min_vram_mb == 1048576
    assert load_settings({"SOLLOL_MAX_CONCURRENT_REQUESTS": " +8 "}).max_concurrent_requests == 8
    assert load_settings({"SOLLOL_MIN_SUCCESS_RATE": "5e-1"}).min_success_rate == 0.5


def test_node_spec_built_directly_is_bounded_too() -> None:
    # the Nodes page builds NodeSpec itself (Hydra.add_node): the same limits apply
    for attrs in ({"slots": 8000}, {"slots": True}, {"max_model_b": float("inf")}, {"max_model_b": float("nan")},
                  {"vram_mb": 10 ** 12}, {"gpu": 1}, {"name": "bad name"}):
        with pytest.raises(ConfigError) as info:
            NodeSpec(url="http://127.0.0.2:11434", **attrs)
        assert len(str(info.value)) < MAX_MESSAGE_CHARS


def test_a_declared_remote_loopback_node_keeps_local_false_when_saved() -> None:
    spec = parse_node("far=http://127.0.0.9:11434;local=false")
    assert parse_node(format_node(spec)).local is False


GOOD_OLLAMA_HOST = [
    ("0.0.0.0", "http://127.0.0.1:11434"),            # a server's "listen everywhere" is this machine to a client
    ("0.0.0.0:11500", "http://127.0.0.1:11500"),
    ("http://0.0.0.0:11434", "http://127.0.0.1:11434"),
    ("::", "http://[::1]:11434"),
    ("[::]:11500", "http://[::1]:11500"),
    (":11500", "http://127.0.0.1:11500"),              # no host: this machine
    ("127.0.0.5", "http://127.0.0.5:11434"),           # no scheme: http, Ollama's port
    ("gpu-box.lan:11500", "http://gpu-box.lan:11500"),
    ("http://gpu-box.lan", "http://gpu-box.lan:80"),   # a scheme and no port: the scheme's, as the ollama client
    ("https://gpu-box.lan", "https://gpu-box.lan:443"),
    ("https://gpu-box.lan:8443/", "https://gpu-box.lan:8443"),
    ("[::1]:11434", "http://[::1]:11434"),
    ("http://user:pw@127.0.0.5:11434", "http://user:pw@127.0.0.5:11434"),
]


@pytest.mark.parametrize(("text", "url"), GOOD_OLLAMA_HOST, ids=[t for t, _ in GOOD_OLLAMA_HOST])
def test_ollama_host_is_read_as_ollamas_clients_read_it(text: str, url: str) -> None:
    assert load_settings({"OLLAMA_HOST": text}).ollama_host == NodeSpec(url=url)
    assert [n.url for n in SollolConfig.from_env({"OLLAMA_HOST": text}).nodes] == [url]


def test_ollama_host_0000_is_the_localhost_node_already_listed() -> None:
    env = {"SOLLOL_NODES": "local=http://127.0.0.1:11434", "OLLAMA_HOST": "0.0.0.0"}
    assert [n.name for n in SollolConfig.from_env(env).nodes] == ["local"]


@pytest.mark.parametrize(("text", "host"), [
    ("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("::", "::"), ("[::1]", "::1"), ("::1", "::1"),
    ("localhost", "localhost"), ("GPU-Box.lan", "gpu-box.lan"), (" 127.0.0.2 ", "127.0.0.2"),
], ids=["loopback", "any-v4", "any-v6", "v6-brackets", "v6", "localhost", "name", "spaces"])
def test_good_bind_hosts(text: str, host: str) -> None:
    assert load_settings({"HYDRA_GATEWAY_HOST": text}).gateway_host == host


def test_every_setting_has_a_bad_value_in_the_table() -> None:
    assert {v for v, _, _ in BAD} == {s.name for s in SETTINGS}


# --- start-up turns the error into the message ------------------------------------------------

def test_hydra_from_env_raises_the_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^SOLLOL_NODES="):
        Hydra.from_env({"SOLLOL_NODES": "http://[::1", "HYDRA_DB": str(tmp_path / "h.db")})


@pytest.mark.parametrize(("variable", "value"), [
    ("SOLLOL_NODES", "http://[::1"), ("HYDRA_GATEWAY_HOST", "999.1.1.1"), ("OLLAMA_HOST", "x" * 50_000),
], ids=["nodes-ipv6", "bind-host", "ollama-host-huge"])
def test_serve_stops_with_the_message_and_no_traceback(variable: str, value: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "SOLLOL_")) and k != "OLLAMA_HOST"}
    env.update({variable: value, "HYDRA_DB": str(tmp_path / "h.db"), "HYDRA_GATEWAY_PORT": "0",
                "HYDRA_EMBEDDED_NODE": "off", "SOLLOL_DISCOVER_LOCALHOST": "false"})
    done = subprocess.run([sys.executable, "-m", "hydra", "serve"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"hydra: {variable}=" in done.stderr
    assert len(done.stderr) < 1000
