"""Every Hydra setting, resolved as defaults < environment < saved overrides.

``SETTINGS`` is the one registry: the settings page, the reasoning page and
start-up validation all read it, so a variable is described once. The engine's
variables (SOLLOL_*, OLLAMA_HOST) take their parser, bounds and default from
``hydra.sollol.config.ENV_VARIABLES`` and ``SollolConfig``, and the reasoning
ones theirs from ``hydra.reasoning``: an environment value means the same thing
to ``load_settings`` and ``SollolConfig.from_env``, and each is checked in one place.

A bad environment value stops start-up with a ``ConfigError`` naming the
variable, the value and what is allowed. A bad *saved* value (written by an
older version) is skipped with a warning: the user can fix it on the settings
page, which they could not reach if it blocked start-up.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from platformdirs import user_data_dir

from .config_parsers import (
    EMBEDDED_NODE_MODES,
    MAX_KEY_CHARS,
    NAME_LISTS,
    choice_parser,
    parse_embedded,
    parse_host,
    parse_key,
    parse_model_name,
    parse_name_list,
    parse_path,
)
from .reasoning import MAX_SCORE, MAX_THINKING_TOKENS_LIMIT, REASONING_MODES, ReasoningSettings
from .sollol.addresses import shown
from .sollol.config import (
    ENV_BY_NAME,
    ENV_VARIABLES,
    SollolConfig,
    config_values,
    format_node,
    parse_bool,
    parse_float,
    parse_int,
    range_text,
    with_ollama_host,
)
from .sollol.errors import ConfigError
from .sollol.types import NodeSpec, RoutingMode

logger = logging.getLogger(__name__)

GROUPS = ("routing", "resources", "reasoning", "nodes", "storage")


# The parsers of Hydra's own settings live in hydra/config_parsers.py.
MAX_ANSWER_TOKENS = 131072     # HYDRA_MAX_TOKENS: past this no model's context holds the answer anyway


# --- formatters: value -> canonical text (what is saved and displayed) -----------

def _format_scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _format_nodes(value: Iterable[NodeSpec]) -> str:
    return ",".join(format_node(spec) for spec in value)


def _format_host(value: NodeSpec | None) -> str:
    return value.url if value is not None else ""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, what it accepts and where it belongs."""

    name: str
    default: str                      # as text, parsed like any environment value
    kind: str                         # choice / bool / int / float / text / nodes / url / cidr / path
    allowed: str                      # what the settings page shows next to the input
    description: str
    parse: Callable[[str, str], Any]  # (variable, text) -> value; raises ConfigError
    runtime: bool                     # may change while Hydra runs (and be saved)
    group: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None      # bounds of int/float settings, for number inputs
    maximum: float | None = None
    format: Callable[[Any], str] = field(default=_format_scalar)


def _int(name: str, default: str, minimum: int, maximum: int | None, description: str, runtime: bool,
         group: str) -> Setting:
    return Setting(name, default, "int", range_text("an integer", minimum, maximum), description,
                   partial(parse_int, minimum=minimum, maximum=maximum), runtime, group,
                   minimum=minimum, maximum=maximum)


def _float(name: str, default: str, minimum: float, maximum: float, description: str, runtime: bool,
           group: str) -> Setting:
    return Setting(name, default, "float", range_text("a number", minimum, maximum), description,
                   partial(parse_float, minimum=minimum, maximum=maximum), runtime, group,
                   minimum=minimum, maximum=maximum)


_ENGINE_DEFAULTS = SollolConfig()
_REASONING_DEFAULTS = ReasoningSettings()


def _engine(name: str, kind: str, description: str, runtime: bool, group: str,
            format: Callable[[Any], str] = _format_scalar) -> Setting:
    """A setting of the engine: what it accepts, how it is parsed and its default come from
    ``hydra.sollol.config`` (ENV_VARIABLES and SollolConfig's defaults); only the words are Hydra's."""
    variable = ENV_BY_NAME[name]
    default = format(getattr(_ENGINE_DEFAULTS, variable.field)) if variable.field is not None else ""
    return Setting(name, default, kind, variable.allowed, description, variable.parse, runtime, group,
                   variable.choices, variable.minimum, variable.maximum, format)


SETTINGS: tuple[Setting, ...] = (
    # routing
    _engine("SOLLOL_DEFAULT_ROUTING_MODE", "choice", "How a node is chosen when a task names no mode.",
            True, "routing"),
    _engine("SOLLOL_PARALLEL_REQUESTS", "bool", "Run several requests at once across the nodes (off: one at a time).",
            True, "routing"),
    _engine("SOLLOL_MAX_CONCURRENT_REQUESTS", "int", "Requests in flight at once, across all nodes.", True, "routing"),
    _engine("SOLLOL_MIN_SUCCESS_RATE", "float",
            "Reliable mode only uses nodes with at least this recent success rate.", True, "routing"),
    _engine("SOLLOL_FIRST_TOKEN_TIMEOUT_S", "float",
            "Longest wait for a node's first token, cold loads of big models included (seconds); each "
            "attempt's own deadline is usually shorter, from what the node has to do.", False, "routing"),
    _engine("SOLLOL_PREFIX_AFFINITY", "bool",
            "Send a conversation's next turn to the node that still holds its prompt in cache, when that "
            "finishes sooner.", True, "routing"),
    _int("HYDRA_MAX_TOKENS", "1024", 1, MAX_ANSWER_TOKENS,
         "Longest answer, in tokens, of a task from the app or the command line that sets none, so a "
         "rambling model cannot hold a node for minutes (gateway clients send their own).", True, "routing"),
    # resources
    _engine("SOLLOL_VRAM_MONITORING", "bool",
            "Watch GPU memory and keep large model loads off nodes that are short of it.", True, "resources"),
    _engine("SOLLOL_MIN_VRAM_MB", "int",
            "A GPU node with less free VRAM than this (MB) takes no new large model.", True, "resources"),
    # reasoning
    Setting("HYDRA_REASONING_MODE", _REASONING_DEFAULTS.mode, "choice", "one of " + ", ".join(REASONING_MODES),
            "auto adapts the thinking level to the task's complexity; off, standard, deep fix it.",
            choice_parser(REASONING_MODES), True, "reasoning", REASONING_MODES),
    Setting("HYDRA_REASONING_MODEL", _REASONING_DEFAULTS.reasoning_model, "text",
            "a model name such as qwen3:14b (no spaces)", "Model used for reasoning tasks.", parse_model_name, True,
            "reasoning"),
    Setting("HYDRA_USE_REASONING_MODEL", _format_scalar(_REASONING_DEFAULTS.use_reasoning_model), "bool",
            "true or false", "Send reasoning and math tasks to the reasoning model.", parse_bool, True, "reasoning"),
    _int("HYDRA_MAX_THINKING_TOKENS", str(_REASONING_DEFAULTS.max_thinking_tokens), 1, MAX_THINKING_TOKENS_LIMIT,
         "Largest thinking budget, in tokens.", True, "reasoning"),
    _float("HYDRA_DEEP_THINKING_THRESHOLD", str(_REASONING_DEFAULTS.deep_thinking_threshold), 0.0, MAX_SCORE,
           "Complexity score (0-10) from which deep thinking is used.", True, "reasoning"),
    # nodes
    _engine("SOLLOL_NODES", "nodes", "Ollama nodes to route to.", True, "nodes", format=_format_nodes),
    _engine("OLLAMA_HOST", "url", "One more Ollama node, as the ollama client reads it.", False, "nodes",
            format=_format_host),
    _engine("SOLLOL_DISCOVERY_CIDR", "cidr", "Scan this network for Ollama nodes at start (empty: no scan).",
            False, "nodes"),
    _engine("SOLLOL_DISCOVER_LOCALHOST", "bool", "Use the Ollama at localhost:11434 when one answers there.",
            False, "nodes"),
    Setting("HYDRA_EMBEDDED_NODE", "auto", "choice", "one of " + ", ".join(EMBEDDED_NODE_MODES),
            "Built-in llama.cpp node; auto starts it when no other node is configured or answering.",
            parse_embedded, False, "nodes", EMBEDDED_NODE_MODES),
    # storage: what the process fixes at start (its database, the port it serves on)
    Setting("HYDRA_DB", str(Path(user_data_dir("hydra")) / "hydra.db"), "path", "a file path",
            "SQLite file holding task history, routing decisions and saved settings.",
            parse_path, False, "storage"),
    _int("HYDRA_GATEWAY_PORT", "8080", 0, 65535,
         "Port of the Ollama/OpenAI-compatible HTTP gateway and /metrics (0: no gateway).", False, "storage"),
    Setting("HYDRA_GATEWAY_HOST", "127.0.0.1", "text", "an address to bind, such as 127.0.0.1, 0.0.0.0 or ::",
            "Address the gateway listens on (loopback unless you open it).", parse_host, False, "storage"),
    Setting("HYDRA_API_KEY", "", "text", f"printable ASCII without spaces, at most {MAX_KEY_CHARS} characters "
            "(empty: no key)",
            "When set, every gateway route but / needs 'Authorization: Bearer <key>'.", parse_key, False,
            "storage", format=lambda value: "***" if value else ""),
    Setting("HYDRA_ALLOWED_HOSTS", "", "text", NAME_LISTS["host"],
            "More Host names the gateway answers to, besides this machine's names and IP addresses "
            "(a reverse proxy's or a DNS name of this machine).", partial(parse_name_list, "host"), False,
            "storage", format=",".join),
    Setting("HYDRA_ALLOWED_ORIGINS", "", "text", NAME_LISTS["origin"],
            "Web pages, besides this machine's, that may call the gateway from a browser "
            "(as OLLAMA_ORIGINS does for Ollama).", partial(parse_name_list, "origin"), False,
            "storage", format=",".join),
    Setting("HYDRA_ACCESS_LOG", "true", "bool", "true or false",
            "A log line per gateway request (method, path, status, duration, node, model; never bodies or keys).",
            parse_bool, False, "storage"),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = MappingProxyType({s.name: s for s in SETTINGS})


def get_setting(name: str) -> Setting:
    try:
        return SETTINGS_BY_NAME[name]
    except KeyError:
        raise ConfigError("setting", shown(name), "one of " + ", ".join(SETTINGS_BY_NAME)) from None


def parse_value(name: str, text: Any) -> Any:
    """Parse one setting's text (the settings page refuses bad input with the message)."""
    setting = get_setting(name)
    return setting.parse(name, text)


def _coerce(setting: Setting, value: Any) -> Any:
    # Already-parsed values go through their text form, so they are validated
    # and canonicalised exactly like typed input.
    text = value if isinstance(value, str) else setting.format(value)
    return setting.parse(setting.name, text)


@dataclass(frozen=True)
class SettingDiff:
    name: str
    env_value: Any   # what the environment (or the default) gives
    value: Any       # what is in force


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Immutable: changes return a new ``Settings``."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]         # "default" | "env" | "saved"
    env_values: Mapping[str, Any]      # defaults < environment, before saved overrides
    env_sources: Mapping[str, str] = field(default_factory=dict)  # "default" | "env", for resets

    def __getitem__(self, name: str) -> Any:
        get_setting(name)
        return self.values[name]

    def as_text(self, name: str) -> str:
        return get_setting(name).format(self[name])

    def with_value(self, name: str, value: Any) -> Settings:
        """A copy with ``name`` overridden (as the settings page saves it)."""
        setting = get_setting(name)
        if not setting.runtime:
            raise ConfigError(name, shown(value), "a setting that can change while Hydra runs; "
                              "this one is read at start-up, set it in the environment")
        return self._replace(name, _coerce(setting, value), "saved")

    def without_override(self, name: str) -> Settings:
        """A copy with ``name`` back to what the environment (or the default) says."""
        get_setting(name)
        return self._replace(name, self.env_values[name], self.env_sources.get(name, "default"))

    def overridden(self) -> list[SettingDiff]:
        """Saved values that differ from the environment, in registry order."""
        return [SettingDiff(s.name, self.env_values[s.name], self.values[s.name]) for s in SETTINGS
                if self.sources[s.name] == "saved" and self.values[s.name] != self.env_values[s.name]]

    def _replace(self, name: str, value: Any, source: str) -> Settings:
        values = dict(self.values, **{name: value})
        sources = dict(self.sources, **{name: source})
        return Settings(MappingProxyType(values), MappingProxyType(sources), self.env_values, self.env_sources)

    # --- typed views ----------------------------------------------------------
    @property
    def default_mode(self) -> RoutingMode:
        return self.values["SOLLOL_DEFAULT_ROUTING_MODE"]

    @property
    def parallel_requests(self) -> bool:
        return self.values["SOLLOL_PARALLEL_REQUESTS"]

    @property
    def max_concurrent_requests(self) -> int:
        return self.values["SOLLOL_MAX_CONCURRENT_REQUESTS"]

    @property
    def min_success_rate(self) -> float:
        return self.values["SOLLOL_MIN_SUCCESS_RATE"]

    @property
    def vram_monitoring(self) -> bool:
        return self.values["SOLLOL_VRAM_MONITORING"]

    @property
    def min_vram_mb(self) -> int:
        return self.values["SOLLOL_MIN_VRAM_MB"]

    @property
    def max_tokens(self) -> int:
        """HYDRA_MAX_TOKENS: the answer cap the app and the command line give a task that sets none."""
        return self.values["HYDRA_MAX_TOKENS"]

    @property
    def reasoning_mode(self) -> str:
        return self.values["HYDRA_REASONING_MODE"]

    @property
    def reasoning_model(self) -> str:
        return self.values["HYDRA_REASONING_MODEL"]

    @property
    def use_reasoning_model(self) -> bool:
        return self.values["HYDRA_USE_REASONING_MODEL"]

    @property
    def max_thinking_tokens(self) -> int:
        return self.values["HYDRA_MAX_THINKING_TOKENS"]

    @property
    def deep_thinking_threshold(self) -> float:
        return self.values["HYDRA_DEEP_THINKING_THRESHOLD"]

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """SOLLOL_NODES only; ``all_nodes`` adds OLLAMA_HOST."""
        return self.values["SOLLOL_NODES"]

    @property
    def ollama_host(self) -> NodeSpec | None:
        return self.values["OLLAMA_HOST"]

    @property
    def all_nodes(self) -> tuple[NodeSpec, ...]:
        """SOLLOL_NODES, then OLLAMA_HOST's node unless already listed."""
        return with_ollama_host(self.nodes, self.ollama_host)

    @property
    def discovery_cidr(self) -> str | None:
        return self.values["SOLLOL_DISCOVERY_CIDR"]

    @property
    def discover_localhost(self) -> bool:
        return self.values["SOLLOL_DISCOVER_LOCALHOST"]

    @property
    def embedded_node(self) -> str:
        return self.values["HYDRA_EMBEDDED_NODE"]

    @property
    def db_path(self) -> Path:
        return self.values["HYDRA_DB"]

    @property
    def gateway_port(self) -> int:
        return self.values["HYDRA_GATEWAY_PORT"]

    @property
    def gateway_host(self) -> str:
        return self.values["HYDRA_GATEWAY_HOST"]

    @property
    def api_key(self) -> str:
        return self.values["HYDRA_API_KEY"]

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return self.values["HYDRA_ALLOWED_HOSTS"]

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return self.values["HYDRA_ALLOWED_ORIGINS"]

    @property
    def access_log(self) -> bool:
        return self.values["HYDRA_ACCESS_LOG"]

    def sollol_config(self, **extra: Any) -> SollolConfig:
        """The engine's config; ``extra`` sets SollolConfig fields Hydra does not expose."""
        config = SollolConfig(**config_values({v.name: self.values[v.name] for v in ENV_VARIABLES}))
        return config.replace(**extra) if extra else config


def load_settings(env: Mapping[str, str] | None = None, saved: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the environment (strict), then saved overrides (lenient)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.name in env:
            values[setting.name] = setting.parse(setting.name, env[setting.name])
            sources[setting.name] = "env"
        else:
            values[setting.name] = setting.parse(setting.name, setting.default)
            sources[setting.name] = "default"
    env_values, env_sources = dict(values), dict(sources)
    for name, text in (saved or {}).items():
        saved_setting = SETTINGS_BY_NAME.get(name)
        if saved_setting is None:
            # The settings table may hold keys other parts of Hydra save; not ours to judge.
            logger.debug("saved key %s is not a setting; ignored", name)
            continue
        setting = saved_setting
        if not setting.runtime:
            logger.warning("ignoring saved %s=%r: it is read from the environment at start-up only", name, text)
            continue
        try:
            values[name] = setting.parse(name, text)
        except ConfigError as exc:
            logger.warning("ignoring saved setting: %s (using %s)", exc, setting.format(values[name]) or "empty")
            continue
        sources[name] = "saved"
    return Settings(MappingProxyType(values), MappingProxyType(sources),
                    MappingProxyType(env_values), MappingProxyType(env_sources))
