"""The one Hydra of the process, shared by every browser session.

``make run`` (hydra/launch.py) starts it before the web server and hands it
over with ``adopt``; under a plain ``streamlit run app.py``, ``st.cache_resource``
builds it on the first page view. Either way every session and rerun gets the
same object, so tasks outlive a browser reload. The embedded node warms in the
background: no page waits for the model. Pages only call its public methods,
which return frozen snapshots and views, never engine internals.
"""
from __future__ import annotations

import threading

import streamlit as st

from hydra.service import Hydra
from hydra.sollol.errors import ConfigError, HydraError
from hydra.ui.formatting import startup_error_text
from hydra.ui.safe_markdown import safe_markdown


def _release(hydra: Hydra) -> None:
    # Called when the cache is cleared (tests, a config reload): stop its threads.
    # (At interpreter exit, Hydra.start's own atexit hook closes it.)
    hydra.close()


_adopted: list[Hydra] = []  # at most one: the Hydra the launcher started before the web server
_adopted_lock = threading.Lock()


def adopt(hydra: Hydra) -> None:
    """Serve this already started Hydra to the pages (the launcher starts it with the process)."""
    with _adopted_lock:
        _adopted[:] = [hydra]


def _take_adopted() -> Hydra | None:
    with _adopted_lock:
        return _adopted.pop() if _adopted else None


@st.cache_resource(show_spinner="Starting Hydra: reading settings, contacting nodes…", on_release=_release)
def get_hydra() -> Hydra:
    """The launcher's Hydra, else one built and started from the environment (and saved settings)."""
    adopted = _take_adopted()
    if adopted is not None:
        return adopted
    hydra = Hydra.from_env()  # a bad environment value raises ConfigError here, before any thread starts
    try:
        return hydra.start(embedded_in_background=True)
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
