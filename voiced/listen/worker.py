"""One configured pipeline listening in a thread of its own, so the daemon's main thread is
free for signals: started, waited on until it listens, and stopped within the service's bound,
also while it is still starting (a reload or SIGTERM can come before it listens)."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from voiced.listen.loop import Listener
from voiced.ops.memory import release_freed_memory

log = logging.getLogger(__name__)


class Worker:
    """Runs `run(on_listening=...)` in a thread: `run` builds the pipeline, hands its Listener
    to `on_listening` once audio is being listened to, and returns when listening ends."""

    def __init__(self, run: Callable[..., None], stop_timeout_s: float):
        self.failure: Exception | None = None
        self._stop_timeout_s = stop_timeout_s
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # a stop may come while the pipeline is still starting
        self._stopping = False
        self._listening_started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(run,), name="listener", daemon=True)
        self.thread.start()

    def _run(self, run: Callable[..., None]) -> None:
        try:
            run(on_listening=self._listening)
        except Exception as exc:  # cannot start at all (bad input file, server cannot start)
            log.debug("listener failed", exc_info=True)
            self.failure = exc

    def started(self) -> bool:
        """Wait until the pipeline listens (recognizer up, source open); False if it failed."""
        while not self._listening_started.wait(0.1):
            if not self.thread.is_alive():
                return False
        return True

    def _listening(self, listener: Listener) -> None:
        # what start-up (or the worker a reload replaced) freed goes back to the system
        gc.collect()
        release_freed_memory()
        self._listening_started.set()
        with self._lock:
            self._listeners.append(listener)
            if self._stopping:  # stop() came before the listener ran: not to be lost
                listener.stop(self._stop_timeout_s)

    def stop(self) -> None:
        """Finish sessions in flight within the service's stop bound, then return."""
        with self._lock:
            self._stopping = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener.stop(self._stop_timeout_s)
        self.thread.join(self._stop_timeout_s + 2)
