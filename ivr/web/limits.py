"""Per-key rate limits of one web process (in memory; a restart forgets)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class WindowLimit:
    """At most ``limit`` events per key within a sliding ``window_s``.

    :meth:`take` counts one event and returns None, or, past the limit, counts nothing and
    returns the seconds until the next event is allowed. At most ``max_keys`` keys are kept
    (the least recently used forgotten first). Thread-safe.

    >>> clock = [0.0]
    >>> limit = WindowLimit(2, 60, clock=lambda: clock[0])
    >>> limit.take("ann"), limit.take("ann"), limit.take("ann"), limit.take("bob")
    (None, None, 60.0, None)
    >>> clock[0] = 60.5
    >>> limit.take("ann")
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        now = self.clock()
        with self._lock:
            stamps = self._events.setdefault(key, deque(maxlen=self.limit))
            self._events.move_to_end(key)
            while stamps and stamps[0] <= now - self.window_s:
                stamps.popleft()
            if len(stamps) >= self.limit:
                return stamps[0] + self.window_s - now
            stamps.append(now)
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
            return None
