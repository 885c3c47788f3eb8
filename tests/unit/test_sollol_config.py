"""SollolConfig.from_env and the SOLLOL_NODES parser: the seed's defaults and errors a user can act on."""
from __future__ import annotations

import os

import pytest

from hydra.sollol import discovery
from hydra.sollol.config import NODES_FORMAT, SollolConfig, format_node, parse_node, parse_nodes
from hydra.sollol.errors import ConfigError
from hydra.sollol.types import NodeSpec, RoutingMode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith(("HYDRA_", "SOLLOL_")) or key == "OLLAMA_HOST":
            monkeypatch.delenv(key)


def test_defaults_are_the_seeds():
    config = SollolConfig.from_env({})
    assert config.default_mode is RoutingMode.ASYNC
    assert config.parallel_requests is True
    assert config.max_concurrent_requests == 4
    assert config.vram_monitoring is True
    assert config.min_vram_mb == 100
    assert config.min_success_rate == 0.98
    assert config.discovery_cidr is None  # no scan unless configured
    assert config.nodes == ()


def test_from_env_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("SOLLOL_DEFAULT_ROUTING_MODE", "Reliable")
    monkeypatch.setenv("SOLLOL_MAX_CONCURRENT_REQUESTS", " 8 ")
    assert SollolConfig.from_env().default_mode is RoutingMode.RELIABLE
    assert SollolConfig.from_env().max_concurrent_requests == 8


@pytest.mark.parametrize("env, expected", [
    ({"SOLLOL_DEFAULT_ROUTING_MODE": "FAST"}, ("default_mode", RoutingMode.FAST)),
    ({"SOLLOL_PARALLEL_REQUESTS": "false"}, ("parallel_requests", False)),
    ({"SOLLOL_VRAM_MONITORING": "off"}, ("vram_monitoring", False)),
    ({"SOLLOL_MIN_VRAM_MB": "0"}, ("min_vram_mb", 0)),
    ({"SOLLOL_MIN_SUCCESS_RATE": "0.9"}, ("min_success_rate", 0.9)),
    ({"SOLLOL_DISCOVERY_CIDR": " 127.0.0.0/29 "}, ("discovery_cidr", "127.0.0.0/29")),
    ({"SOLLOL_DISCOVER_LOCALHOST": "no"}, ("discover_localhost", False)),
], ids=["mode", "parallel", "vram-monitoring", "min-vram", "success-rate", "cidr", "localhost"])
def test_from_env_values(env, expected):
    field, value = expected
    assert getattr(SollolConfig.from_env(env), field) == value


@pytest.mark.parametrize("variable, value, allowed", [
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "abc", "an integer from 1 to 1024"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "0", "an integer from 1 to 1024"),
    ("SOLLOL_DEFAULT_ROUTING_MODE", "turbo", "one of fast, reliable, async"),
    ("SOLLOL_PARALLEL_REQUESTS", "perhaps", "true or false"),
    ("SOLLOL_VRAM_MONITORING", "maybe", "true or false"),
    ("SOLLOL_MIN_VRAM_MB", "-5", "an integer from 0 to 1048576"),
    ("SOLLOL_MIN_VRAM_MB", "lots", "an integer from 0 to 1048576"),
    ("SOLLOL_MIN_SUCCESS_RATE", "1.5", "a number from 0.0 to 1.0"),
    ("SOLLOL_NODES", "light=ftp://127.0.0.2:11434", NODES_FORMAT),
    ("SOLLOL_NODES", "light=http://127.0.0.2:port", NODES_FORMAT),
    ("SOLLOL_NODES", "http://", NODES_FORMAT),
    ("SOLLOL_NODES", "light=http://127.0.0.2:11434;turbo=yes", NODES_FORMAT),
    ("SOLLOL_NODES", "light=http://127.0.0.2:11434;slots", NODES_FORMAT),
    ("SOLLOL_NODES", "light=http://127.0.0.2 :11434", NODES_FORMAT),
    # refused when read, as hydra.config refuses them, not only when the router starts its scan
    ("SOLLOL_DISCOVERY_CIDR", "not-a-net", "an IPv4 network"),
    ("SOLLOL_DISCOVERY_CIDR", "127.0.0.0/16", "prefix /20 or longer"),
    ("OLLAMA_HOST", "bad host", "host, host:port or http://host:port"),
], ids=["concurrency-abc", "concurrency-zero", "mode-turbo", "parallel", "vram", "min-vram-negative",
        "min-vram-word", "success-rate", "node-scheme", "node-port", "node-no-host", "node-unknown-attr",
        "node-attr-no-value", "node-space", "cidr-word", "cidr-wide", "ollama-host"])
def test_from_env_errors_name_variable_value_and_allowed(variable, value, allowed):
    with pytest.raises(ConfigError) as caught:
        SollolConfig.from_env({variable: value})
    message = str(caught.value)
    assert caught.value.variable == variable
    assert variable in message
    assert repr(value) in message
    assert allowed in message


@pytest.mark.parametrize("value, label", [
    ("light=http://127.0.0.2:1;slots=0", "SOLLOL_NODES (slots of light)"),
    ("light=http://127.0.0.2:1;gpu=sometimes", "SOLLOL_NODES (gpu of light)"),
    ("light=http://127.0.0.2:1;max_model_b=big", "SOLLOL_NODES (max_model_b of light)"),
], ids=["slots-zero", "gpu-word", "max-model-b-word"])
def test_bad_node_attributes_name_the_attribute(value, label):
    with pytest.raises(ConfigError) as caught:
        SollolConfig.from_env({"SOLLOL_NODES": value})
    assert label in str(caught.value)


def test_duplicate_node_names_are_refused():
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_nodes("a=http://127.0.0.2:1,a=http://127.0.0.3:1")


def test_parse_nodes_attributes():
    light, powerful, bare = parse_nodes(
        "light=http://127.0.0.2:11500;max_model_b=30;gpu=false;slots=3, "
        "powerful=http://127.0.0.3:11434/;max_model_b=70;gpu=true;vram_mb=48000,"
        "127.0.0.4")
    assert light == NodeSpec(url="http://127.0.0.2:11500", name="light", max_model_b=30.0, gpu=False, slots=3,
                             local=True)
    assert powerful.url == "http://127.0.0.3:11434"  # trailing slash dropped
    assert (powerful.max_model_b, powerful.gpu, powerful.vram_mb, powerful.slots) == (70.0, True, 48000, 2)
    assert bare.url == "http://127.0.0.4:11434"     # no scheme, no port: Ollama's defaults
    assert bare.name == "127.0.0.4:11434"
    assert bare.max_model_b is None and bare.gpu is None and bare.vram_mb is None


@pytest.mark.parametrize("entry, local", [
    ("http://127.0.0.1:11434", True),
    ("http://localhost:11434", True),
    ("http://127.0.0.9:11434", True),
    ("http://127.0.0.9:11434;local=false", False),
], ids=["127.0.0.1", "localhost", "loopback-block", "declared-remote"])
def test_local_is_inferred_from_the_address(entry, local):
    assert parse_node(entry).local is local


def test_format_node_round_trips():
    spec = parse_node("powerful=http://127.0.0.3:11434;max_model_b=70;gpu=true;vram_mb=48000;slots=4")
    again = parse_node(format_node(spec))
    assert again == spec


def test_ollama_host_joins_the_nodes():
    config = SollolConfig.from_env({"SOLLOL_NODES": "light=http://127.0.0.2:11434", "OLLAMA_HOST": "127.0.0.5"})
    assert [n.url for n in config.nodes] == ["http://127.0.0.2:11434", "http://127.0.0.5:11434"]
    same = SollolConfig.from_env({"SOLLOL_NODES": "light=http://127.0.0.2:11434", "OLLAMA_HOST": "127.0.0.2:11434"})
    assert len(same.nodes) == 1


def test_replace_refuses_unknown_settings():
    with pytest.raises(ConfigError, match="turbo"):
        SollolConfig().replace(turbo=True)


@pytest.mark.parametrize("parallel, expected", [(True, 4), (False, 1)], ids=["parallel", "serial"])
def test_effective_concurrency(parallel, expected):
    assert SollolConfig(parallel_requests=parallel).effective_concurrency == expected


def test_a_node_given_credentials_is_still_the_same_node(monkeypatch):
    # OLLAMA_HOST and the localhost probe must not add a second entry for a configured node
    # that differs only by its user:password@
    config = SollolConfig.from_env({"SOLLOL_NODES": "local=http://u:pw@127.0.0.1:11434", "OLLAMA_HOST": "0.0.0.0"})
    assert [n.url for n in config.nodes] == ["http://u:pw@127.0.0.1:11434"]
    probed: list[str] = []

    def probe(url: str, timeout_s: float = 0.5) -> str:
        probed.append(url)
        return "0.1"

    monkeypatch.setattr(discovery, "probe", probe)
    assert [n.name for n in discovery.discover(config)] == ["local"]
    assert probed == []
