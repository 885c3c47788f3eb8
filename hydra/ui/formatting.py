"""Pure text helpers for the pages: numbers, times, statuses, help texts.

No streamlit import here, so every function is testable with a plain table.
Strings returned for ``st.markdown`` use Streamlit's Markdown extensions
(``:green-badge[...]``, ``:material/...:``) and escape anything a user typed.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from hydra.sollol.errors import ConfigError
from hydra.sollol.model_names import model_key
from hydra.sollol.types import MODE_DESCRIPTIONS, RoutingMode, TaskStatus
from hydra.ui.safe_markdown import code_span

DASH = "—"
TASK_TYPE_OPTIONS = ("auto", "code", "reasoning", "math", "general")
TERMINAL = frozenset(s.value for s in TaskStatus if s.terminal)
RESUBMITTABLE = frozenset({TaskStatus.FAILED.value, TaskStatus.INTERRUPTED.value})

_STATUS_BADGE = {
    "queued": ("gray", ":material/hourglass_empty:"),
    "running": ("blue", ":material/progress_activity:"),
    "done": ("green", ":material/check:"),
    "failed": ("red", ":material/error:"),
    "cancelled": ("gray", ":material/block:"),
    "interrupted": ("orange", ":material/pause_circle:"),
}
# Characters with a meaning in (Streamlit) Markdown, for one-line labels built from user text.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def value_of(x: Any) -> str:
    """An enum's value, or the text of anything else (None stays empty)."""
    if x is None:
        return ""
    return str(getattr(x, "value", x))


# --- numbers and times -------------------------------------------------------------

def fmt_seconds(s: float | None) -> str:
    if s is None:
        return DASH
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes} min {seconds} s"


def fmt_rate(tokens_per_s: float | None) -> str:
    return DASH if tokens_per_s is None else f"{tokens_per_s:.1f} tok/s"


def fmt_pct(fraction: float | None) -> str:
    if fraction is None:
        return DASH
    pct = fraction * 100
    return f"{pct:.0f}%" if pct in (0, 100) or pct >= 10 else f"{pct:.1f}%"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return DASH
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def fmt_bytes(n: int | None) -> str:
    return DASH if n is None else fmt_mb(n / (1024 * 1024))


def fmt_params(billions: float | None) -> str:
    if billions is None:
        return DASH
    return f"{billions:g}B"


def fmt_clock(ts: float | None) -> str:
    """Local wall-clock time of an epoch timestamp."""
    return DASH if ts is None else datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def fmt_when(ts: float | None, now: float | None = None) -> str:
    """Clock time today, date and time otherwise."""
    if ts is None:
        return DASH
    now = time.time() if now is None else now
    day = datetime.fromtimestamp(ts).date()
    if day == datetime.fromtimestamp(now).date():
        return fmt_clock(ts)
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def fmt_age(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "never"
    age = max(0.0, (time.time() if now is None else now) - ts)
    if age < 60:
        return f"{age:.0f} s ago"
    if age < 3600:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.1f} h ago"


# --- text ---------------------------------------------------------------------------

def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 node``, ``2 nodes``, ``0 nodes`` (``many`` when adding an s is wrong)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def md_escape(text: str) -> str:
    """User text made safe for a one-line Markdown label (no links, emphasis, directives)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def one_line(text: str | None, limit: int = 80) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def tool_call_text(call: Mapping[str, Any], limit: int = 160) -> str:
    """``name(arg=value, ...)`` for a tool call as the engine keeps it ({"function": {name, arguments}})."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or {}
    args = ", ".join(f"{k}={v!r}" for k, v in arguments.items()) if isinstance(arguments, Mapping) else str(arguments)
    return one_line(f"{function.get('name') or '?'}({args})", limit)


def split_batch(text: str | None, batch: bool) -> list[str]:
    """The prompts of the form: the whole text, or one per non-empty line in batch mode."""
    text = (text or "").strip()
    if not text:
        return []
    if not batch:
        return [text]
    return [line.strip() for line in text.splitlines() if line.strip()]


def status_badge(status: TaskStatus | str) -> str:
    name = value_of(status)
    color, icon = _STATUS_BADGE.get(name, ("gray", ":material/help:"))
    return f":{color}-badge[{icon} {name}]"


def mode_label(mode: RoutingMode | str) -> str:
    mode = RoutingMode(value_of(mode))
    return f"{mode.value} — {MODE_DESCRIPTIONS[mode]}"


def task_meta(node: str | None, model: str | None, mode: Any, task_type: str | None,
              priority: int | None) -> str:
    """The caption under a task's title: where and how it runs."""
    parts = [f":material/dns: {md_escape(node)}" if node else ":material/dns: waiting for a node",
             f":material/neurology: {md_escape(model)}" if model else ""]
    if mode:
        parts.append(f"mode {value_of(mode)}")
    if task_type:
        parts.append(value_of(task_type))
    if priority is not None:
        parts.append(f"priority {priority}")
    return " · ".join(p for p in parts if p)


def result_stats(ttft_s: float | None, tokens_per_s: float | None, eval_count: int | None,
                 duration_s: float | None, attempts: int = 1) -> str:
    parts = [f"TTFT {fmt_seconds(ttft_s)}", fmt_rate(tokens_per_s)]
    if eval_count is not None:
        parts.append(plural(eval_count, "token"))
    if duration_s is not None:
        parts.append(f"{fmt_seconds(duration_s)} total")
    if attempts > 1:
        parts.append(f"{attempts} attempts")
    return " · ".join(parts)


def assessment_line(assessment: Any, ran_model: str | None = None) -> str:
    """``score 6.5/10 · standard thinking · budget 2,000 tokens``; empty without an assessment.

    The assessment's model is only the reasoning engine's suggestion: the card names the model that
    ran (``ran_model``), so the suggestion is shown as one, and not at all once that model ran."""
    if assessment is None:
        return ""
    level = "no thinking" if assessment.level == "none" else f"{assessment.level} thinking"
    parts = [f"score {assessment.score:.1f}/10", level]
    if getattr(assessment, "budget", None):
        parts.append(f"budget {assessment.budget:,} tokens")
    suggested = getattr(assessment, "model_override", None)
    if suggested and (ran_model is None or model_key(ran_model) != model_key(suggested)):
        parts.append(f"suggests {suggested}" if ran_model is None else f"suggested {suggested}")
    return "Reasoning: " + " · ".join(parts)


def candidates_text(candidates: Iterable[Mapping[str, Any]] | None) -> str:
    """One cell of the decision table: every candidate with its score or why it was excluded."""
    out = []
    for c in candidates or ():
        where = f"{c.get('node')}/{c.get('model')}"
        if c.get("eligible") and c.get("score") is not None:
            out.append(f"{where} {c['score']:.2f}")
        else:
            out.append(f"{where} ✗ {c.get('reason') or 'excluded'}")
    return "; ".join(out)


def config_error_text(exc: ConfigError) -> str:
    """What the settings pages show next to a refused input."""
    return f"`{exc.variable}` = {code_span(str(exc.value))} was refused: expected {exc.allowed}. Nothing was changed."


# The node form's fields, by the start of the variable a NodeSpec error names.
_NODE_FIELDS = (("node url", "URL"), ("node name", "Name"), ("slots", "Slots"), ("max_model_b", "Max model (B)"),
                ("vram_mb", "VRAM (MB)"), ("gpu", "GPU"))
_LIST_SYNTAX = re.compile(r"',' or ';'")


def node_form_error_text(exc: ConfigError) -> str:
    """A refused node in the form's words: its field's label, what was typed, what it takes."""
    variable = str(exc.variable)
    label = next((label for prefix, label in _NODE_FIELDS if variable.lower().startswith(prefix)), None)
    # "without spaces, ',' or ';'" is the SOLLOL_NODES list's syntax; in a form field it means commas and semicolons.
    allowed = _LIST_SYNTAX.sub("commas or semicolons", str(exc.allowed))
    if label is None:  # not one field's fault (a name or URL already in the cluster, say)
        return f"**Not added:** {code_span(str(exc.value))}: expected {allowed}. Nothing was changed."
    return f"**{label}**: {code_span(str(exc.value))} is not accepted: expected {allowed}. Nothing was changed."


def is_simulated(version: str | None) -> bool:
    """Hydra's simulated nodes (hydra/sim) report an Ollama version ending in -sim."""
    return bool(version) and str(version).endswith("-sim")


def node_state_badge(healthy: bool, circuit: str, last_seen: float | None, last_error: str | None) -> str:
    """One badge that cannot contradict itself: checking, healthy, answering while its circuit
    recovers, or down (with the circuit named only when it is open)."""
    circuit = circuit.replace("_", "-")
    if last_seen is None and not last_error:
        return ":gray-badge[:material/hourglass_empty: checking]"
    if healthy and circuit == "closed":
        return ":green-badge[:material/check_circle: healthy]"
    if healthy:
        return f":orange-badge[:material/warning: answering · circuit {circuit}: on trial]"
    if circuit == "open":
        return ":red-badge[:material/cancel: down · circuit open]"
    return ":red-badge[:material/cancel: down]"


def nodes_diff_text(here: Iterable[Any], env: Iterable[Any], shown_url: Any = str) -> str:
    """SOLLOL_NODES saved here against the environment's, as node lists a person reads."""
    mine = {n.name: n for n in here}
    theirs = {n.name: n for n in env}

    def names(specs: Iterable[Any]) -> str:
        return ", ".join(f"**{md_escape(n.name)}** {code_span(shown_url(n.url))}" for n in specs) or "none"

    parts = []
    if added := [n for name, n in mine.items() if name not in theirs]:
        parts.append(f"added here: {names(added)}")
    if removed := [n for name, n in theirs.items() if name not in mine]:
        parts.append(f"removed here: {names(removed)}")
    if changed := [n for name, n in mine.items() if name in theirs and theirs[name] != n]:
        parts.append(f"changed here: {names(changed)}")
    return "; ".join(parts) or f"the same nodes: {names(mine.values())}"


def startup_error_text(exc: ConfigError) -> str:
    """Markdown for a bad environment value at start-up: what, what is allowed, how to fix."""
    return (f"**Hydra cannot start: `{exc.variable}` = {code_span(str(exc.value))} is not valid.**\n\n"
            f"Allowed: {exc.allowed}.\n\n"
            f"Fix: set `{exc.variable}` to an allowed value, or unset it to use the default, "
            f"then restart, e.g. `unset {exc.variable}; streamlit run app.py`.")


NO_NODE_HELP = (
    "Hydra routes tasks to Ollama servers. Add one on the **Settings** page (Nodes → Add a node), "
    "or start Hydra with `SOLLOL_NODES`, for example:\n\n"
    "```bash\n"
    "SOLLOL_NODES=\"light=http://127.0.0.1:11434,powerful=http://127.0.0.2:11434\" streamlit run app.py\n"
    "```"
)


def embedded_text(url: str) -> str:
    return (f"The embedded node (SmolLM2-135M on llama.cpp) is serving at `{url}`: fine for trying Hydra, "
            "small for real work. Add real Ollama nodes on the **Settings** page or with `SOLLOL_NODES`.")
