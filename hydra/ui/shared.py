"""The one Hydra of the process, shared by every browser session.

``st.cache_resource`` builds it on the first page view and hands the same
object to every session and rerun after that; tasks therefore outlive a
browser reload. Pages only call its public methods, which return frozen
snapshots and views, never engine internals.
"""
from __future__ import annotations

import streamlit as st

from hydra.service import Hydra
from hydra.sollol.errors import ConfigError, HydraError
from hydra.ui.formatting import startup_error_text
from hydra.ui.safe_markdown import safe_markdown


def _release(hydra: Hydra) -> None:
    # Called when the cache is cleared (tests, a config reload): stop its threads.
    # (At interpreter exit, Hydra.start's own atexit hook closes it.)
    hydra.close()


@st.cache_resource(show_spinner="Starting Hydra: reading settings, contacting nodes…", on_release=_release)
def get_hydra() -> Hydra:
    """Build and start the Router from the environment (and saved settings)."""
    hydra = Hydra.from_env()  # a bad environment value raises ConfigError here, before any thread starts
    try:
        return hydra.start()
    except BaseException:
        hydra.close()
        raise


def hydra_or_stop() -> Hydra:
    """The shared Hydra, or an explanation on the page and a stop if it cannot start."""
    try:
        return get_hydra()
    except ConfigError as exc:
        st.error(startup_error_text(exc), icon=":material/settings_alert:")
    except HydraError as exc:
        st.error(f"**Hydra could not start.** {safe_markdown(str(exc))}", icon=":material/error:")
    st.stop()
    raise AssertionError("unreachable: st.stop() ends the script run")
