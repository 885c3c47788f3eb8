"""Settings forms: inputs bound to the settings in force, apply, refuse in place, reset.

Each input's key is ``"<form>:<VARIABLE>"``. It shows the value in force
unless the user has typed something else since; a refused value stays in the
input with the error right under it, and nothing is applied (the service
validates all changes before applying any). Applying and resetting happen in
callbacks, so the rerun that follows already shows the new state.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from hydra.config import SETTINGS_BY_NAME, Setting
from hydra.service import Hydra
from hydra.sollol.errors import ConfigError, HydraError
from hydra.sollol.redact import redact_url
from hydra.ui import formatting as fmt
from hydra.ui.safe_markdown import safe_markdown

_SYNCED = "forms_synced"


def _error_key(form: str) -> str:
    return f"{form}:error"


def widget_value(setting: Setting, value: Any) -> Any:
    """The setting's value as its input holds it (enums as text)."""
    if setting.kind in ("choice", "text"):
        return fmt.value_of(value)
    return value


def _sync(key: str, value: Any) -> None:
    # Show the value in force, unless the user's own edit is pending (a refused value stays visible).
    synced = st.session_state.setdefault(_SYNCED, {})
    if key not in st.session_state or synced.get(key) != value:
        st.session_state[key] = value
        synced[key] = value


def setting_input(hydra: Hydra, form: str, name: str, *, label: str,
                  format_func: Callable[[Any], str] | None = None, captions: Sequence[str] | None = None,
                  step: float | None = None) -> None:
    """One input for one setting, with its error (if the last apply refused it) right below."""
    setting = SETTINGS_BY_NAME[name]
    key = f"{form}:{name}"
    _sync(key, widget_value(setting, hydra.settings[name]))
    help_text = f"{setting.description}\n\n`{name}`: {setting.allowed}."
    if setting.kind == "choice" and captions is not None:
        st.radio(label, setting.choices, key=key, captions=captions, help=help_text,
                 format_func=format_func or str)
    elif setting.kind == "choice":
        st.selectbox(label, setting.choices, key=key, help=help_text, format_func=format_func or str)
    elif setting.kind == "bool":
        st.toggle(label, key=key, help=help_text)
    elif setting.kind == "int":
        st.number_input(label, step=int(step or 1), format="%d", key=key, help=help_text)
    elif setting.kind == "float":
        st.number_input(label, step=step or 0.1, format="%.2f", key=key, help=help_text)
    else:
        st.text_input(label, key=key, help=help_text)
    field_error(form, name)


def field_error(form: str, name: str) -> None:
    exc = st.session_state.get(_error_key(form))
    if isinstance(exc, ConfigError) and exc.variable == name:
        st.error(fmt.config_error_text(exc), icon=":material/block:")


def form_error(form: str, names: Sequence[str]) -> None:
    """An error that belongs to none of the form's inputs (shown at the form's foot)."""
    exc = st.session_state.get(_error_key(form))
    if isinstance(exc, ConfigError) and exc.variable not in names:
        st.error(fmt.config_error_text(exc), icon=":material/block:")
    elif exc is not None and not isinstance(exc, ConfigError):
        st.error(safe_markdown(str(exc)), icon=":material/error:")
    for kind, text in st.session_state.pop(f"{form}:flash", []):
        getattr(st, kind)(safe_markdown(text))


def apply_button(hydra: Hydra, form: str, names: Sequence[str], label: str = "Apply") -> None:
    st.form_submit_button(label, key=f"{form}:apply", type="primary", icon=":material/check:",
                          on_click=_apply, args=(hydra, form, tuple(names)))


def _apply(hydra: Hydra, form: str, names: tuple[str, ...]) -> None:
    state = st.session_state
    state.pop(_error_key(form), None)
    current = hydra.settings
    changes = {}
    for name in names:
        value = state.get(f"{form}:{name}")
        if value != widget_value(SETTINGS_BY_NAME[name], current[name]):
            changes[name] = value
    if not changes:
        state[f"{form}:flash"] = [("info", "Nothing to apply: every value is already in force.")]
        return
    try:
        hydra.update_settings(changes)
    except HydraError as exc:
        state[_error_key(form)] = exc
        return
    done = ", ".join(f"`{n}` = `{SETTINGS_BY_NAME[n].format(hydra.settings[n])}`" for n in changes)
    state[f"{form}:flash"] = [("success", f"Applied to the running router and saved: {done}.")]


# --- values that differ from the environment --------------------------------------------

def overrides(hydra: Hydra, names: Sequence[str] | None = None, key: str = "overrides") -> None:
    """Saved values that differ from the environment, each with a reset button."""
    settings = hydra.settings
    diffs = [d for d in settings.overridden() if names is None or d.name in names]
    if not diffs:
        st.caption(":material/check: Every value comes from the environment (or its default).")
        return
    for diff in diffs:
        setting = SETTINGS_BY_NAME[diff.name]
        text, button = st.columns([5, 1], vertical_alignment="center")
        env = fmt.one_line(setting.format(diff.env_value), 60) or "(empty)"
        if setting.kind == "nodes":  # node lists as names and addresses, not the variable's syntax
            text.markdown(f"`{diff.name}`: {fmt.nodes_diff_text(diff.value, diff.env_value, redact_url)} "
                          f"(against the environment's {fmt.plural(len(diff.env_value), 'node')}).")
            env = ", ".join(n.name for n in diff.env_value) or "no nodes"
        else:
            now = fmt.one_line(setting.format(diff.value), 60) or "(empty)"
            text.markdown(f"`{diff.name}` is **{fmt.md_escape(now)}** here; the environment says "
                          f"{fmt.md_escape(env)}.")
        button.button("Reset", key=f"{key}:reset:{diff.name}", icon=":material/undo:",
                      help=f"Back to the environment's value ({env}).",
                      on_click=_reset, args=(hydra, diff.name))


def _reset(hydra: Hydra, name: str) -> None:
    try:
        hydra.reset_setting(name)
    except HydraError as exc:
        st.session_state.setdefault("settings:flash", []).append(("error", f"Could not reset {name}: {exc}"))
