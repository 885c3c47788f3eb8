"""The parsers of Hydra's own settings: (variable, text) -> value, raising ConfigError.

The engine's variables are parsed by hydra.sollol.config, whose table ENV_VARIABLES says how;
the registry of every setting (hydra/config.py) names these for the rest.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from .reasoning import parse_model_name as reasoning_model_name
from .sollol.addresses import parse_bind_host, shown
from .sollol.config import config_text, parse_bool
from .sollol.errors import ConfigError

EMBEDDED_NODE_MODES = ("auto", "on", "off")


MAX_PATH_CHARS = 4096          # Linux's PATH_MAX
MAX_KEY_CHARS = 1024
MAX_MODEL_NAME_CHARS = 256
MAX_NAME_ENTRIES = 64          # HYDRA_ALLOWED_HOSTS / HYDRA_ALLOWED_ORIGINS


def parse_choice(choices: tuple[str, ...], variable: str, text: str) -> str:
    value = config_text(variable, text).lower()
    if value not in choices:
        raise ConfigError(variable, shown(text), "one of " + ", ".join(choices))
    return value


def choice_parser(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    return partial(parse_choice, choices)


def parse_path(variable: str, text: str) -> Path:
    value = config_text(variable, text, MAX_PATH_CHARS)
    if not value:
        raise ConfigError(variable, shown(text), "a file path")
    return Path(value).expanduser()


def parse_host(variable: str, text: str) -> str:
    return parse_bind_host(variable, config_text(variable, text))


def parse_model_name(variable: str, text: str) -> str:
    value = config_text(variable, text, MAX_MODEL_NAME_CHARS)
    try:
        return reasoning_model_name(variable, value)
    except ConfigError as exc:
        raise ConfigError(variable, shown(text), exc.allowed) from None


_KEY_RULE = f"a key of printable ASCII without spaces, at most {MAX_KEY_CHARS} characters"


def parse_key(variable: str, text: str) -> str:
    # The key itself is never quoted in a message: "***" stands for it.
    if len(text) > MAX_KEY_CHARS + 64:   # spacing around a key is trimmed; a key this long is not one
        raise ConfigError(variable, "***", _KEY_RULE)
    key = text.strip()
    if text and not key:
        # Blank is not "no key": someone meant to set one, and serving without it would be silent.
        raise ConfigError(variable, text, "a key without spaces; to serve without a key, unset the variable")
    if len(key) > MAX_KEY_CHARS or any(not "!" <= c <= "~" for c in key):
        # An HTTP header carries printable ASCII only: any other key could never be sent.
        raise ConfigError(variable, "***", _KEY_RULE)
    return key


def parse_name_list(kind: str, variable: str, text: str) -> tuple[str, ...]:
    # Comma-separated, spaces and quotes trimmed as Ollama trims OLLAMA_ORIGINS; the gateway's guard
    # applies the entries (hydra/gateway/guard.py), this only refuses what could never match.
    value = config_text(variable, text)
    entries = tuple(e.strip().strip("\"'").strip() for e in value.strip("\"'").split(","))
    entries = tuple(e for e in entries if e)
    if len(entries) > MAX_NAME_ENTRIES:
        raise ConfigError(variable, shown(text), f"at most {MAX_NAME_ENTRIES} entries: {NAME_LISTS[kind]}")
    unusable = next((e for e in entries if _unusable_entry(kind, e)), None)
    if unusable is not None:
        raise ConfigError(variable, shown(unusable), NAME_LISTS[kind])
    return entries


def _unusable_entry(kind: str, entry: str) -> bool:
    # Host and Origin headers are ASCII (an international name arrives in its xn-- form).
    if len(entry) > 253 or entry.count("*") > 1 or not entry.isascii() or any(c.isspace() for c in entry):
        return True
    if kind == "host":
        return "/" in entry
    scheme, sep, rest = entry.partition("://")
    return entry != "*" and (not sep or not scheme or "/" in rest)


NAME_LISTS = {
    "host": "comma-separated host names such as gpu-box.lan or *.example.com, no scheme or path (* allows any)",
    "origin": "comma-separated origins such as https://chat.example.com or chrome-extension://*, "
              "no path (* allows any)",
}


def parse_embedded(variable: str, text: str) -> str:
    # on/off read like the boolean variables do (true, 1, yes ...), so either spelling works.
    value = config_text(variable, text).lower()
    if value in EMBEDDED_NODE_MODES:
        return value
    try:
        return "on" if parse_bool(variable, value) else "off"
    except ConfigError:
        raise ConfigError(variable, shown(text), "one of " + ", ".join(EMBEDDED_NODE_MODES)) from None
