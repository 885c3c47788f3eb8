"""The one error a batch's input can raise: a sentence the page, the CLI and the gateway show as it is."""
from __future__ import annotations

from hydra.sollol.errors import HydraError


class BatchInputError(HydraError, ValueError):
    """A file, a template or an option that cannot make a batch; nothing was created."""
