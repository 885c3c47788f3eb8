"""A first-come, first-served lock whose waiters can give up.

`threading.Lock` makes no promise about which waiter wins; on a 2-core box
running one generation at a time, requests must be served in arrival order,
and a request whose client has gone away must leave the line without being
served.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Abandoned(Exception):
    """The waiter gave up (its `abandoned()` check said so) before its turn."""


class FairLock:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._line: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def acquire(self, abandoned: Callable[[], bool] | None = None,
                poll_s: float = 0.1) -> None:
        """Wait for our turn; raise `Abandoned` once `abandoned()` is true."""
        with self._mutex:
            if not self._held and not self._line:
                self._held = True
                return
            ticket = threading.Event()
            self._line.append(ticket)
        while not ticket.wait(poll_s):
            if abandoned is not None and abandoned():
                with self._mutex:
                    if not ticket.is_set():
                        self._line.remove(ticket)
                        raise Abandoned()
                # The turn was handed to us while we were deciding: pass it on.
                self.release()
                raise Abandoned()

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of an unheld FairLock")
            if self._line:
                # Ownership passes straight to the next waiter; never unheld
                # in between, so a newcomer cannot jump the line.
                self._line.popleft().set()
            else:
                self._held = False

    @contextmanager
    def turn(self, abandoned: Callable[[], bool] | None = None) -> Iterator[None]:
        self.acquire(abandoned)
        try:
            yield
        finally:
            self.release()

    def waiting(self) -> int:
        with self._mutex:
            return len(self._line)

    def busy(self) -> bool:
        with self._mutex:
            return self._held
