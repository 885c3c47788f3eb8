"""BatchManager: what the service, the page, the gateway and the CLI ask of batches.

    batches = hydra.batches                       # one per service, over HYDRA_DB
    batch_id = batches.create(parsed, "Label: {review}", BatchOptions(priority=2))
    batches.progress(batch_id)                    # aggregates: counts, per node, tokens/s, ETA
    batches.pause(batch_id); batches.resume(batch_id); batches.cancel(batch_id); batches.retry_failed(batch_id)

``create`` checks everything (the template against the columns, every rendered prompt and the
options as a task would be checked) before it writes, then writes the batch whole, then starts it.
``recover`` (at the service's start) settles the rows a dead process left running from the
history's task rows and resumes the batches it left running.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hydra.sollol import ClusterSnapshot, Task, TaskError

from .errors import BatchInputError
from .input import BatchInput
from .rows import BatchInfo, BatchOptions, Progress, RowOutcome
from .runner import BatchRunner, Submit
from .store import BatchStore
from .template import Template

if TYPE_CHECKING:
    from hydra.service import Hydra

log = logging.getLogger("hydra.batch")
WINDOW_TTL_S = 0.5
# Rows in flight per slot. Two: while one row runs in a slot, the next waits in the router's queue, so
# routing sees a backlog to place (bench.batch, 2,000 rows on cluster8: 1.27 x the makespan bound at 2,
# 1.36 x at 1.5, 1.57 x at 1) and no slot waits for the runner's next claim. The waiting rows are
# background tasks: an interactive task still goes before all of them.
WINDOW_FACTOR = 2

SHOWN_ROW_ERRORS = 3
MAX_NAME_CHARS = 200

TaskRow = Callable[[str], Mapping[str, Any] | None]   # history's row of a task id, or None


def check_options(options: BatchOptions) -> None:
    """The options as Task.validate sees them, once for the whole batch (BatchInputError)."""
    if options.mode not in ("fast", "reliable", "async"):
        raise BatchInputError(f"mode must be fast, reliable or async, got {options.mode!r}")
    probe = Task(prompt="x", model=options.model, task_type=options.task_type, mode=options.mode,
                 priority=options.priority, max_tokens=options.max_tokens, format=options.format, system=options.system)
    try:
        probe.validate()
    except TaskError as exc:
        raise BatchInputError(str(exc)) from None


def render_all(parsed: BatchInput, template: Template) -> list[str]:
    template.check(parsed.columns)
    prompts = [template.render(row) for row in parsed.rows]
    blank = [i + 1 for i, p in enumerate(prompts) if not p.strip()]
    if blank:
        raise BatchInputError(f"the template gives an empty prompt for row {', '.join(map(str, blank[:5]))}: "
                              "fill in its values or remove it")
    bad: list[str] = []
    for number, prompt in enumerate(prompts, start=1):
        try:
            Task(prompt=prompt).validate()
        except TaskError as exc:
            bad.append(f"row {number}: {exc}")
            if len(bad) >= SHOWN_ROW_ERRORS:
                break
    if bad:
        raise BatchInputError("; ".join(bad))
    return prompts


def outcome_from_history(task: Mapping[str, Any] | None) -> RowOutcome | None:
    """What a dead process's row gets from its task's history row: its end when the task ended done
    or failed, None (run it again) when it never finished (queued, running, interrupted, cancelled)."""
    if task is None or task.get("status") not in ("done", "failed"):
        return None
    return RowOutcome(status=str(task["status"]), answer=task.get("text") or "", node=task.get("node"),
                      model=task.get("model"), ttft_s=task.get("ttft_s"), duration_s=task.get("duration_s"),
                      tokens=task.get("eval_count"), tokens_per_s=task.get("tokens_per_s"), error=task.get("error"),
                      prompt_tokens=task.get("prompt_eval_count"))


class BatchManager:
    def __init__(self, store: BatchStore, submit: Submit, task_row: TaskRow, window: Callable[[], int],
                 cluster_up: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self._cluster_up = cluster_up
        self._submit = submit
        self._task_row = task_row
        self._window = window
        self._lock = threading.Lock()
        self._runners: dict[str, BatchRunner] = {}
        self._closed = False

    # --- making one ---

    def create(self, parsed: BatchInput, template: str | Template, options: BatchOptions | None = None, *,
               name: str = "", source: str = "page", meta: Mapping[str, Any] | None = None,
               start: bool = True, prompts: list[str] | None = None) -> str:
        """Check, write whole, start; BatchInputError (nothing written) on the first problem."""
        options = options or BatchOptions()
        tmpl = template if isinstance(template, Template) else Template.parse(template)
        check_options(options)
        prompts = prompts if prompts is not None else render_all(parsed, tmpl)
        batch_id = self.store.create(name=(name or f"{len(parsed.rows)} rows")[:MAX_NAME_CHARS], template=tmpl.text,
                                     options=options, columns=parsed.columns, rows=parsed.rows, prompts=prompts,
                                     source=source, meta=meta)
        if start:
            self.start(batch_id)
        return batch_id

    def create_requests(self, keys: list[dict[str, str]], requests: list[dict[str, Any]], prompts: list[str],
                        options: BatchOptions, *, name: str, source: str = "api",
                        meta: Mapping[str, Any] | None = None) -> str:
        """A batch whose rows carry their own task fields (the gateway's Batch API: messages, model, ...);
        ``keys`` are the rows' own columns (custom_id), ``prompts`` what the page shows of each. The
        caller checked each request; the batch's options give mode and priority. Written whole, started."""
        check_options(options)
        batch_id = self.store.create(name=name[:MAX_NAME_CHARS], template="", options=options,
                                     columns=list(keys[0]) if keys else [], rows=keys, prompts=prompts,
                                     source=source, meta=meta, requests=requests)
        self.start(batch_id)
        return batch_id

    # --- running ---

    def start(self, batch_id: str) -> bool:
        """Run the batch here (a new runner), unless it runs already or another live process runs it."""
        with self._lock:
            if self._closed or batch_id in self._runners:
                return False
            info = self.store.get(batch_id)
            if info is None or info.status != "running" or not self.store.take(batch_id):
                return False
            runner = BatchRunner(self.store, batch_id, info.options, self._submit, self._window, self._exited,
                                 self._cluster_up)
            self._runners[batch_id] = runner
        runner.start()
        return True

    def _exited(self, runner: BatchRunner) -> None:
        with self._lock:
            if self._runners.get(runner.batch_id) is runner:
                del self._runners[runner.batch_id]
        # A retry or resume that came as the runner was ending: it saw the runner alive, so it is ours to run.
        progress = self.store.progress(runner.batch_id) if not self._closed else None
        if progress is not None and progress.batch.status == "running" and progress.counts.get("pending"):
            self.start(runner.batch_id)

    def pause(self, batch_id: str) -> bool:
        changed = self.store.set_status(batch_id, "paused", only_from=("running",))
        with self._lock:
            runner = self._runners.get(batch_id)
        if runner is not None:
            runner.pause()
        return changed

    def resume(self, batch_id: str) -> bool:
        changed = self.store.set_status(batch_id, "running", only_from=("paused",))
        self._run_again(batch_id)
        return changed

    def _run_again(self, batch_id: str) -> None:
        with self._lock:
            runner = self._runners.get(batch_id)
        if runner is not None:
            runner.resume()  # should it be ending right now, _exited starts the next one
        else:
            self.start(batch_id)

    def cancel(self, batch_id: str) -> bool:
        with self._lock:
            runner = self._runners.get(batch_id)
        if runner is not None and runner.alive:
            runner.cancel()
            runner.join(30)
            return True
        self.store.cancel_pending(batch_id)
        return self.store.set_status(batch_id, "cancelled", only_from=("running", "paused"))

    def retry_failed(self, batch_id: str) -> int:
        """The failed rows run again (alone: the done ones are kept); the batch runs if it had ended."""
        count = self.store.retry(batch_id, ("failed",))
        if count:
            self.store.set_status(batch_id, "running", only_from=("done", "paused", "running"))
            self._run_again(batch_id)
        return count

    def wait(self, batch_id: str, timeout: float | None = None) -> bool:
        """Until this process's runner of the batch ends (done, paused, cancelled); True if it did."""
        with self._lock:
            runner = self._runners.get(batch_id)
        return runner is None or runner.join(timeout)

    def running_here(self, batch_id: str) -> bool:
        with self._lock:
            runner = self._runners.get(batch_id)
        return runner is not None and runner.alive

    # --- restart ---

    def recover(self, resume: bool = True) -> list[str]:
        """Settle the rows dead processes left running (each from its task's history row), then resume
        the batches they left running. Returns the ids resumed."""
        settled = 0
        for batch_id, index, task_id in self.store.orphans():
            self.store.settle(batch_id, index, task_id, outcome_from_history(self._task_row(task_id)))
            settled += 1
        resumed = [b for b in self.store.resumable() if resume and self.start(b)]
        if settled or resumed:
            log.info("batches: %d row(s) left running by a stopped process settled; %d batch(es) resumed",
                     settled, len(resumed))
        return resumed

    # --- reading ---

    def get(self, batch_id: str) -> BatchInfo | None:
        return self.store.get(batch_id)

    def batches(self, limit: int = 50) -> list[BatchInfo]:
        return self.store.batches(limit)

    def progress(self, batch_id: str) -> Progress | None:
        return self.store.progress(batch_id)

    def rows(self, batch_id: str, offset: int = 0, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        return self.store.rows(batch_id, offset, limit, status)

    def close(self) -> None:
        """Before the router closes: every runner stops; its rows in flight go back to pending."""
        with self._lock:
            self._closed = True
            runners = list(self._runners.values())
        for runner in runners:
            runner.shutdown()
        self.store.close()


class SlotWindow:
    """How many rows a batch keeps in flight: ``WINDOW_FACTOR`` per slot the cluster may use now (the
    global cap, and the slots of healthy nodes): bounded, never the whole batch queued. Measured at most
    every ``WINDOW_TTL_S``: the runner asks after every row."""

    def __init__(self, snapshot: Callable[[], ClusterSnapshot], clock: Callable[[], float] = time.monotonic) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._measured = float("-inf")
        self._value = 1

    def __call__(self) -> int:
        now = self._clock()
        if now - self._measured >= WINDOW_TTL_S:
            snap = self._snapshot()
            slots = min(snap.max_concurrent, sum(n.slots for n in snap.nodes if n.healthy))
            self._value = max(1, WINDOW_FACTOR * slots)
            self._measured = now
        return self._value


def for_service(service: Hydra) -> BatchManager:
    """The manager of a service: its store in the history's file, rows submitted through ``Hydra.submit``."""
    return BatchManager(BatchStore(service.history.path), service.submit, service.history.get_task,
                        SlotWindow(service.snapshot), service.has_healthy_node)
