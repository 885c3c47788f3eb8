"""Batch jobs: a file of rows through a prompt template, run over the cluster in the background.

    input.py     CSV / JSON Lines / pasted lines, checked whole before anything is stored
    template.py  the prompt template and its {column} fields
    rows.py      the plain data: BatchOptions, RowOutcome, BatchInfo, Progress
    store.py     batches, rows and Batch API files in HYDRA_DB (own tables, own migrations), aggregates
    runner.py    one batch's thread: rows fed as slots free, each row's end recorded once
    manager.py   what callers use: create, pause, resume, cancel, retry failed, recover at start
    export.py    the results as CSV or JSON Lines
    cli.py       python -m hydra batch, with its progress bar
"""
from .errors import BatchInputError
from .input import BatchInput, parse
from .manager import BatchManager
from .rows import BatchInfo, BatchOptions, Progress, RowOutcome
from .store import BatchStore
from .template import Template

__all__ = ["BatchInfo", "BatchInput", "BatchInputError", "BatchManager", "BatchOptions", "BatchStore", "Progress",
           "RowOutcome", "Template", "parse"]
