"""A function run on a thread of its own while the driver goes on."""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["Background"]


class Background:
    """``fn()`` on a daemon thread (an interrupted run does not wait for it); :meth:`result` returns its
    value or raises its exception in the caller's thread.  ``after`` is called on that thread once the
    result is in, whether ``fn`` returned or raised."""

    def __init__(self, fn: Callable, name: str, after: Callable[[], None] | None = None):
        self._done = threading.Event()
        self._value = self._error = None
        self.seconds = 0.0  # how long fn ran

        def body() -> None:
            t0 = time.perf_counter()
            try:
                self._value = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc
            finally:
                self.seconds = time.perf_counter() - t0
                self._done.set()
                if after is not None:
                    after()

        threading.Thread(target=body, name=name, daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()

    def failed(self) -> bool:
        return self._done.is_set() and self._error is not None

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
