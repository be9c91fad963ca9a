"""Running as a service: SIGHUP and SIGTERM/SIGINT as requests to the main loop, and the
`service:` section (how long a stop may take)."""

from __future__ import annotations

import queue
import signal
from typing import Any

import pydantic

from voiced.config.loader import FrozenModel


class ServiceSettings(FrozenModel):
    """The `service:` section."""

    # SIGTERM: in-flight sessions and actions get this long; keep it below the unit's
    # TimeoutStopSec (20 s), after which systemd kills what is left
    stop_timeout_s: float = pydantic.Field(10.0, gt=0, le=15)


RELOAD, STOP = "reload", "stop"


class SignalRequests:
    """SIGHUP becomes a reload request, SIGTERM/SIGINT a stop request, for the main loop.

    The handlers only enqueue (SimpleQueue.put is safe in a signal handler): the reload or
    stop itself runs in the thread that calls `next()`, not inside a signal handler."""

    SIGNALS = {signal.SIGHUP: RELOAD, signal.SIGTERM: STOP, signal.SIGINT: STOP}

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalRequests:
        for signum, request in self.SIGNALS.items():
            self._previous[signum] = signal.signal(signum, lambda *_, r=request: self._requests.put(r))
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def next(self, timeout: float | None = None) -> str | None:
        """The next request ("reload" or "stop"), or None after `timeout` seconds."""
        try:
            return self._requests.get(timeout=timeout)
        except queue.Empty:
            return None
