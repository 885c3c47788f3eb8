"""What every Python scenario script shares (stdlib only: it runs inside each client's own venv).

A script registers scenarios with ``@scenario``; ``run()`` calls each (or those named on the
command line), each under a time limit, and prints one JSON line:
``{name: {"ok": true, "value": ...}}`` or ``{name: {"ok": false, "type", "error", "status"}}``.
One failing scenario never stops the others, so one run shows every client's behaviour.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

URL = os.environ.get("COMPAT_URL", "http://127.0.0.1:8080")
CHAT_MODEL = os.environ.get("COMPAT_CHAT_MODEL", "llama3.2:3b")
OTHER_MODEL = os.environ.get("COMPAT_OTHER_MODEL", "qwen3:8b")
REAL_MODEL = os.environ.get("COMPAT_REAL_MODEL", "smollm2:135m")
EMBED_MODEL = os.environ.get("COMPAT_EMBED_MODEL", "nomic-embed-text")
SCENARIO_TIMEOUT_S = int(os.environ.get("COMPAT_SCENARIO_TIMEOUT_S", "120"))
# A 1x1 PNG: enough for a client to send an image and a gateway to refuse it for a text-only model.
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

_SCENARIOS: dict[str, Callable[[], Any]] = {}


def scenario(fn: Callable[[], Any]) -> Callable[[], Any]:
    _SCENARIOS[fn.__name__] = fn
    return fn


def status_of(exc: BaseException) -> int | None:
    """The HTTP status a client's exception carries, whatever the client calls it."""
    for name in ("status_code", "status", "http_status"):
        found = getattr(exc, name, None)
        if isinstance(found, int):
            return found
    response = getattr(exc, "response", None)
    found = getattr(response, "status_code", None)
    return found if isinstance(found, int) else None


class ScenarioTimeout(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise ScenarioTimeout(f"the scenario took longer than {SCENARIO_TIMEOUT_S} s")


def run() -> None:
    wanted = sys.argv[1:] or list(_SCENARIOS)
    signal.signal(signal.SIGALRM, _alarm)
    results: dict[str, Any] = {}
    for name in wanted:
        signal.alarm(SCENARIO_TIMEOUT_S)
        try:
            results[name] = {"ok": True, "value": _SCENARIOS[name]()}
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc(file=sys.stderr)
            results[name] = {"ok": False, "type": type(exc).__name__, "error": str(exc)[:2000],
                             "status": status_of(exc)}
        finally:
            signal.alarm(0)
    print(json.dumps(results, default=str), flush=True)
