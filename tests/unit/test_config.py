"""hydra.config: defaults < environment < saved overrides, and errors a user can act on."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from platformdirs import user_data_dir

from hydra.config import GROUPS, SETTINGS, SETTINGS_BY_NAME, Setting, SettingDiff, load_settings, parse_value
from hydra.sollol.config import SollolConfig
from hydra.sollol.errors import ConfigError
from hydra.sollol.types import NodeSpec, RoutingMode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HYDRA_", "SOLLOL_")) or name == "OLLAMA_HOST":
            monkeypatch.delenv(name)


SEED_DEFAULTS = [
    ("SOLLOL_DEFAULT_ROUTING_MODE", RoutingMode.ASYNC),
    ("SOLLOL_PARALLEL_REQUESTS", True),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", 4),
    ("SOLLOL_VRAM_MONITORING", True),
    ("SOLLOL_PREFIX_AFFINITY", True),
    ("SOLLOL_MIN_VRAM_MB", 100),
    ("HYDRA_REASONING_MODE", "auto"),
    ("HYDRA_REASONING_MODEL", "qwen3:14b"),
    ("HYDRA_USE_REASONING_MODEL", True),
    ("HYDRA_MAX_THINKING_TOKENS", 6000),
    ("HYDRA_MAX_TOKENS", 1024),
    ("HYDRA_DEEP_THINKING_THRESHOLD", 9.5),
    ("SOLLOL_MIN_SUCCESS_RATE", 0.98),
    ("SOLLOL_FIRST_TOKEN_TIMEOUT_S", 180.0),
    ("SOLLOL_NODES", ()),
    ("OLLAMA_HOST", None),
    ("SOLLOL_DISCOVERY_CIDR", None),
    ("SOLLOL_DISCOVER_LOCALHOST", True),
    ("HYDRA_GATEWAY_PORT", 8080),
    ("HYDRA_GATEWAY_HOST", "127.0.0.1"),
    ("HYDRA_API_KEY", ""),
    ("HYDRA_ALLOWED_HOSTS", ()),
    ("HYDRA_ALLOWED_ORIGINS", ()),
    ("HYDRA_ACCESS_LOG", True),
    ("HYDRA_EMBEDDED_NODE", "auto"),
    ("HYDRA_DB", Path(user_data_dir("hydra")) / "hydra.db"),
]


@pytest.mark.parametrize(("name", "expected"), SEED_DEFAULTS, ids=[n for n, _ in SEED_DEFAULTS])
def test_default_is_the_seeds(name: str, expected: object) -> None:
    settings = load_settings({})
    assert settings[name] == expected
    assert settings.sources[name] == "default"


def test_registry_covers_every_default_and_nothing_else() -> None:
    assert [s.name for s in SETTINGS] == list(SETTINGS_BY_NAME)
    assert {n for n, _ in SEED_DEFAULTS} == set(SETTINGS_BY_NAME)
    assert {s.group for s in SETTINGS} <= set(GROUPS)


def test_typed_properties_read_the_values() -> None:
    s = load_settings({})
    assert (s.default_mode, s.parallel_requests, s.max_concurrent_requests) == (RoutingMode.ASYNC, True, 4)
    assert (s.vram_monitoring, s.min_vram_mb, s.min_success_rate) == (True, 100, 0.98)
    assert (s.reasoning_mode, s.reasoning_model, s.use_reasoning_model) == ("auto", "qwen3:14b", True)
    assert (s.max_thinking_tokens, s.deep_thinking_threshold) == (6000, 9.5)
    assert (s.nodes, s.discovery_cidr, s.gateway_port, s.embedded_node) == ((), None, 8080, "auto")
    assert s.db_path == Path(user_data_dir("hydra")) / "hydra.db"


FROM_ENV = [
    ("SOLLOL_DEFAULT_ROUTING_MODE", "FAST", RoutingMode.FAST),
    ("SOLLOL_DEFAULT_ROUTING_MODE", "reliable", RoutingMode.RELIABLE),
    ("SOLLOL_PARALLEL_REQUESTS", "false", False),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", " 16 ", 16),
    ("SOLLOL_VRAM_MONITORING", "off", False),
    ("SOLLOL_PREFIX_AFFINITY", "false", False),
    ("SOLLOL_MIN_VRAM_MB", "2048", 2048),
    ("HYDRA_REASONING_MODE", "deep", "deep"),
    ("HYDRA_REASONING_MODEL", "qwen3:1.7b", "qwen3:1.7b"),
    ("HYDRA_USE_REASONING_MODEL", "0", False),
    ("HYDRA_MAX_THINKING_TOKENS", "200000", 200_000),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "7", 7.0),
    ("SOLLOL_MIN_SUCCESS_RATE", "0.9", 0.9),
    ("SOLLOL_NODES", "light=http://127.0.0.2:11434;max_model_b=30;gpu=false,127.0.0.3",
     (NodeSpec("http://127.0.0.2:11434", "light", max_model_b=30.0, gpu=False), NodeSpec("http://127.0.0.3:11434"))),
    ("OLLAMA_HOST", "127.0.0.4", NodeSpec("http://127.0.0.4:11434")),
    ("SOLLOL_DISCOVERY_CIDR", "127.0.0.7/24", "127.0.0.0/24"),
    ("HYDRA_GATEWAY_PORT", "9090", 9090),
    ("HYDRA_EMBEDDED_NODE", "Off", "off"),
    ("HYDRA_EMBEDDED_NODE", "true", "on"),
    ("HYDRA_DB", "/tmp/x/h.db", Path("/tmp/x/h.db")),
]


@pytest.mark.parametrize(("name", "text", "expected"), FROM_ENV, ids=[f"{n}={t}" for n, t, _ in FROM_ENV])
def test_variable_read_from_environment(name: str, text: str, expected: object) -> None:
    settings = load_settings({name: text})
    assert settings[name] == expected
    assert settings.sources[name] == "env"
    assert settings.env_values[name] == expected


def test_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLLOL_MAX_CONCURRENT_REQUESTS", "7")
    assert load_settings().max_concurrent_requests == 7


BAD_ENV = [
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "abc", "an integer from 1 to 1024"),
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "0", "an integer from 1 to 1024"),
    ("SOLLOL_DEFAULT_ROUTING_MODE", "turbo", "one of fast, reliable, async"),
    ("SOLLOL_NODES", "light=http://127.0.0.1:abc", "numeric port"),
    ("SOLLOL_NODES", "light=ftp://127.0.0.1:1", "http://host:port"),
    ("SOLLOL_NODES", "a=127.0.0.2;colour=red", "max_model_b, gpu, vram_mb, slots, local"),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "11", "a number from 0.0 to 10.0"),
    ("HYDRA_REASONING_MODE", "max", "one of auto, off, standard, deep"),
    ("HYDRA_REASONING_MODEL", "qwen3 14b", "no spaces"),
    ("HYDRA_MAX_THINKING_TOKENS", "0", "an integer from 1 to 200000"),
    ("SOLLOL_PARALLEL_REQUESTS", "sometimes", "true or false"),
    ("SOLLOL_MIN_SUCCESS_RATE", "1.5", "a number from 0.0 to 1.0"),
    ("SOLLOL_DISCOVERY_CIDR", "127.0.0.0/8", "prefix /20 or longer"),
    # the engine's scan refuses more than 4,096 addresses at start; the settings say so first
    ("SOLLOL_DISCOVERY_CIDR", "127.0.0.0/16", "prefix /20 or longer"),
    ("SOLLOL_DISCOVERY_CIDR", "not-a-net", "an IPv4 network"),
    ("OLLAMA_HOST", "bad host", "host:port"),
    ("HYDRA_GATEWAY_PORT", "70000", "an integer from 0 to 65535"),
    ("HYDRA_GATEWAY_HOST", "not a host/x", "an address to bind"),
    ("HYDRA_EMBEDDED_NODE", "maybe", "one of auto, on, off"),
    ("HYDRA_DB", " ", "a file path"),
]


@pytest.mark.parametrize(("name", "text", "allowed"), BAD_ENV, ids=[f"{n}={t}" for n, t, _ in BAD_ENV])
def test_bad_environment_value_is_refused_with_name_value_and_allowed(name: str, text: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: text})
    message = str(info.value)
    assert info.value.variable == name
    assert message.startswith(f"{name}=")
    assert text.split(";")[0].strip() in message
    assert allowed in message


@pytest.mark.parametrize(("name", "text", "allowed"), BAD_ENV[:4], ids=[f"{n}={t}" for n, t, _ in BAD_ENV[:4]])
def test_parse_value_refuses_like_the_environment(name: str, text: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed):
        parse_value(name, text)


def test_parse_value_of_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_value("SOLLOL_TURBO", "1")
    assert "SOLLOL_TURBO" in str(info.value)
    assert "SOLLOL_DEFAULT_ROUTING_MODE" in str(info.value) and "HYDRA_DB" in str(info.value)


def test_saved_override_beats_environment() -> None:
    env = {"SOLLOL_DEFAULT_ROUTING_MODE": "fast", "HYDRA_MAX_THINKING_TOKENS": "3000"}
    settings = load_settings(env, {"SOLLOL_DEFAULT_ROUTING_MODE": "reliable", "HYDRA_DEEP_THINKING_THRESHOLD": "8"})
    assert settings.default_mode is RoutingMode.RELIABLE
    assert settings.env_values["SOLLOL_DEFAULT_ROUTING_MODE"] is RoutingMode.FAST
    assert settings.deep_thinking_threshold == 8.0
    assert settings.max_thinking_tokens == 3000
    assert settings.sources["SOLLOL_DEFAULT_ROUTING_MODE"] == "saved"
    assert settings.sources["HYDRA_DEEP_THINKING_THRESHOLD"] == "saved"
    assert settings.sources["HYDRA_MAX_THINKING_TOKENS"] == "env"
    assert settings.sources["SOLLOL_PARALLEL_REQUESTS"] == "default"


SKIPPED_SAVED = [
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", "lots", "not valid"),     # bad value from an older version
    ("HYDRA_REASONING_MODE", "max", "not valid"),
    ("HYDRA_DB", "/elsewhere.db", "start-up only"),             # not a runtime setting
    ("HYDRA_GATEWAY_PORT", "9000", "start-up only"),
]


@pytest.mark.parametrize(("name", "text", "logged"), SKIPPED_SAVED, ids=[n for n, _, _ in SKIPPED_SAVED])
def test_unusable_saved_value_is_skipped_with_a_warning(
        name: str, text: str, logged: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hydra.config"):
        settings = load_settings({}, {name: text, "SOLLOL_MIN_VRAM_MB": "512"})
    assert settings[name] == settings.env_values[name]
    assert settings.sources[name] == "default"
    assert settings.min_vram_mb == 512          # the good saved value still applies
    assert any(name in r.getMessage() and logged in r.getMessage() for r in caplog.records)


def test_unknown_saved_key_is_ignored() -> None:
    assert load_settings({}, {"ui.theme": "dark"}).values == load_settings({}).values


def test_overridden_lists_only_values_that_differ_from_the_environment() -> None:
    env = {"SOLLOL_MAX_CONCURRENT_REQUESTS": "8"}
    settings = load_settings(env, {"SOLLOL_MAX_CONCURRENT_REQUESTS": "8", "SOLLOL_VRAM_MONITORING": "false"})
    assert settings.overridden() == [SettingDiff("SOLLOL_VRAM_MONITORING", True, False)]
    changed = settings.with_value("SOLLOL_MAX_CONCURRENT_REQUESTS", 12)
    assert changed.overridden() == [SettingDiff("SOLLOL_MAX_CONCURRENT_REQUESTS", 8, 12),
                                    SettingDiff("SOLLOL_VRAM_MONITORING", True, False)]
    reset = changed.without_override("SOLLOL_MAX_CONCURRENT_REQUESTS").without_override("SOLLOL_VRAM_MONITORING")
    assert reset.overridden() == []
    assert reset.max_concurrent_requests == 8 and reset.sources["SOLLOL_MAX_CONCURRENT_REQUESTS"] == "env"
    assert reset.vram_monitoring is True and reset.sources["SOLLOL_VRAM_MONITORING"] == "default"
    assert settings.max_concurrent_requests == 8      # the original is untouched


WITH_VALUE = [
    ("SOLLOL_DEFAULT_ROUTING_MODE", RoutingMode.FAST, RoutingMode.FAST),
    ("SOLLOL_DEFAULT_ROUTING_MODE", "reliable", RoutingMode.RELIABLE),
    ("SOLLOL_PARALLEL_REQUESTS", False, False),
    ("HYDRA_DEEP_THINKING_THRESHOLD", 8, 8.0),
    ("SOLLOL_NODES", [NodeSpec("http://127.0.0.2:11434", "a", gpu=True)],
     (NodeSpec("http://127.0.0.2:11434", "a", gpu=True),)),
    ("SOLLOL_NODES", "a=127.0.0.2:11434", (NodeSpec("http://127.0.0.2:11434", "a"),)),
]


@pytest.mark.parametrize(("name", "value", "expected"), WITH_VALUE, ids=[f"{n}-{type(v).__name__}" for n, v, _ in WITH_VALUE])
def test_with_value_takes_text_or_parsed_values(name: str, value: object, expected: object) -> None:
    settings = load_settings({}).with_value(name, value)
    assert settings[name] == expected
    assert settings.sources[name] == "saved"


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("SOLLOL_MAX_CONCURRENT_REQUESTS", 0, "from 1 to 1024"),
    ("HYDRA_DEEP_THINKING_THRESHOLD", "11", "from 0.0 to 10.0"),
    ("HYDRA_DB", "/x.db", "start-up"),
    ("HYDRA_GATEWAY_PORT", 9000, "start-up"),
], ids=["range", "threshold", "db-not-runtime", "port-not-runtime"])
def test_with_value_refuses(name: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError, match=allowed):
        load_settings({}).with_value(name, value)


NON_DEFAULT_ENV = {
    "SOLLOL_DEFAULT_ROUTING_MODE": "fast", "SOLLOL_PARALLEL_REQUESTS": "no", "SOLLOL_MAX_CONCURRENT_REQUESTS": "9",
    "SOLLOL_VRAM_MONITORING": "0", "SOLLOL_MIN_VRAM_MB": "300", "HYDRA_REASONING_MODE": "standard",
    "HYDRA_REASONING_MODEL": "qwen3:8b", "HYDRA_USE_REASONING_MODEL": "false", "HYDRA_MAX_THINKING_TOKENS": "100",
    "HYDRA_DEEP_THINKING_THRESHOLD": "0.5", "SOLLOL_MIN_SUCCESS_RATE": "0.5",
    "SOLLOL_NODES": "light=127.0.0.2:11434;max_model_b=30;gpu=false;slots=3,heavy=http://127.0.0.3:11500;vram_mb=8000",
    "OLLAMA_HOST": "http://127.0.0.9:11434", "SOLLOL_DISCOVERY_CIDR": "127.0.0.0/24", "HYDRA_EMBEDDED_NODE": "off",
    "HYDRA_DB": "/tmp/hydra-test.db", "HYDRA_GATEWAY_PORT": "8181",
}


@pytest.mark.parametrize("name", list(SETTINGS_BY_NAME))
@pytest.mark.parametrize("env", [{}, NON_DEFAULT_ENV], ids=["defaults", "set"])
def test_as_text_round_trips(name: str, env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert parse_value(name, settings.as_text(name)) == settings[name]


def test_settings_are_read_only() -> None:
    settings = load_settings({})
    with pytest.raises(TypeError):
        settings.values["SOLLOL_MAX_CONCURRENT_REQUESTS"] = 99  # type: ignore[index]


SOLLOL_ENVS = [
    {},
    {key: NON_DEFAULT_ENV[key] for key in NON_DEFAULT_ENV if key.startswith("SOLLOL_") or key == "OLLAMA_HOST"},
    {"SOLLOL_NODES": "local=http://127.0.0.1:11434", "OLLAMA_HOST": "127.0.0.1:11434"},   # already listed
    {"OLLAMA_HOST": "127.0.0.5"},
]


@pytest.mark.parametrize("env", SOLLOL_ENVS, ids=["defaults", "everything", "host-listed", "host-only"])
def test_sollol_config_matches_the_engines_own_reading(env: dict[str, str]) -> None:
    assert load_settings(env).sollol_config() == SollolConfig.from_env(env)


def test_sollol_config_maps_fields_and_takes_extras() -> None:
    settings = load_settings({"SOLLOL_NODES": "a=127.0.0.2:1", "OLLAMA_HOST": "127.0.0.3:2"},
                             {"SOLLOL_DEFAULT_ROUTING_MODE": "fast", "SOLLOL_MIN_VRAM_MB": "7"})
    config = settings.sollol_config(poll_interval_s=0.1)
    assert config.default_mode is RoutingMode.FAST and config.min_vram_mb == 7
    assert [n.url for n in config.nodes] == ["http://127.0.0.2:1", "http://127.0.0.3:2"]
    assert config.poll_interval_s == 0.1
    with pytest.raises(ConfigError):
        settings.sollol_config(no_such_field=1)


NUMBERS = [s for s in SETTINGS if s.kind in ("int", "float")]


@pytest.mark.parametrize("setting", NUMBERS, ids=[s.name for s in NUMBERS])
def test_number_bounds_shown_are_the_ones_enforced(setting: Setting) -> None:
    assert setting.minimum is not None
    assert parse_value(setting.name, str(setting.minimum)) == setting.minimum
    with pytest.raises(ConfigError) as info:
        parse_value(setting.name, str(setting.minimum - 1))
    assert setting.allowed in str(info.value)
    if setting.maximum is not None:
        assert parse_value(setting.name, str(setting.maximum)) == setting.maximum
        with pytest.raises(ConfigError, match=setting.allowed):
            parse_value(setting.name, str(setting.maximum + 1))
