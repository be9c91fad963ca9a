"""Decoders lent to sessions, bounded by a memory budget.

A decoder serves one session at a time and is expensive to load, so each model keeps a few
idle ones for the next session. Every decoder, lent or idle, is charged to the server's
`MemoryBudget` at its model's cost, measured as the growth of the process's resident memory
while one loads (loads take turns, so each is measured alone; the first loads happen at
start, before any memory was freed that a later one could reuse). A decoder that does not fit
drops idle decoders of any model first; if it still does not fit the session is refused with
a clear message (RESOURCE_EXHAUSTED), rather than the machine swapping. Model data that all
decoders of a model share (the open LM) is charged once, when it loads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voiced.server.config import ServerSettings

log = logging.getLogger(__name__)

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def available_mb() -> float:
    """MemAvailable: what can be allocated without swapping (Linux's own estimate). Where
    /proc/meminfo is hidden (the unit's ProcSubset=pid), the free memory: less, as it leaves
    out the page cache the kernel would reclaim."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * PAGE_MB


AUTO_BUDGET_SHARE = 0.75  # of MemAvailable at start, when server.memory_budget_mb is not set


def memory_budget_mb(settings: ServerSettings) -> float:
    """This process's share of the server's decoder memory budget."""
    total = settings.memory_budget_mb if settings.memory_budget_mb is not None else AUTO_BUDGET_SHARE * available_mb()
    return total / settings.workers


class PoolExhausted(Exception):
    """No decoder fits the memory budget now; the message is for the client."""


class MemoryBudget:
    """Megabytes of decoders (and the model data they share) against `limit_mb`."""

    def __init__(self, limit_mb: float):
        self.limit_mb = limit_mb
        self.used_mb = 0.0
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one load at a time: its memory growth is its own
        self._pools: list[DecoderPool] = []

    def register(self, pool: DecoderPool) -> None:
        self._pools.append(pool)

    def charge(self, mb: float) -> None:
        """Count memory that is already taken (shared model data, a load larger than estimated)."""
        with self._lock:
            self.used_mb += mb

    def release(self, mb: float) -> None:
        with self._lock:
            self.used_mb -= mb

    def reserve(self, mb: float, what: str) -> None:
        """Take `mb` for a decoder, dropping idle decoders if needed; PoolExhausted if it cannot."""
        for attempt in range(2):
            with self._lock:
                if self.used_mb + mb <= self.limit_mb:
                    self.used_mb += mb
                    return
            if attempt == 0:
                for pool in self._pools:
                    pool.drop_idle()
        raise PoolExhausted(
            f"the server's recognizer memory budget is used up ({self.used_mb:.0f} of "
            f"{self.limit_mb:.0f} MB; one more {what} decoder needs ~{mb:.0f} MB): try again "
            "when other sessions have ended"
        )

    def measured(self, load: Callable[[], object]) -> tuple[object, float]:
        """(what `load` returned, MB the process grew meanwhile)."""
        with self._loading:
            before = resident_mb()
            loaded = load()
            return loaded, max(0.0, resident_mb() - before)


class DecoderPool:
    """Recognizers of one model: `acquire` lends one (an idle one, else a new load), `release`
    keeps up to `keep` idle. `prepare` loads what the model's decoders share, once."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], object],
        keep: int,
        budget: MemoryBudget,
        prepare: Callable[[], None] | None = None,
    ):
        self.name = name
        self._factory = factory
        self._keep = keep
        self._budget = budget
        self._prepare = prepare
        self._prepared = False
        self.cost_mb = 0.0  # per decoder, the largest load measured (0 until the first)
        self._charged: dict[int, float] = {}  # id(recognizer) -> MB charged for it
        self._idle: list = []
        self._lock = threading.Lock()
        budget.register(self)

    def acquire(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if not self._prepared and self._prepare is not None:
                _, shared_mb = self._budget.measured(self._prepare)
                self._budget.charge(shared_mb)
                log.info("%s: shared model data loaded, %.0f MB", self.name, shared_mb)
            self._prepared = True
            cost = self.cost_mb
        self._budget.reserve(cost, self.name)
        try:
            recognizer, loaded_mb = self._budget.measured(self._factory)
        except BaseException:
            self._budget.release(cost)
            raise
        with self._lock:
            if loaded_mb > cost:
                self._budget.charge(loaded_mb - cost)  # it is loaded already: count what it really took
            if loaded_mb > self.cost_mb:
                log.info("%s: a decoder holds ~%.0f MB", self.name, loaded_mb)
                self.cost_mb = loaded_mb
            self._charged[id(recognizer)] = max(cost, loaded_mb)
        return recognizer

    def release(self, recognizer) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(recognizer)
                return
            charged = self._charged.pop(id(recognizer), 0.0)
        self._budget.release(charged)

    def drop_idle(self) -> None:
        with self._lock:
            dropped, self._idle = self._idle, []
            charged = sum(self._charged.pop(id(recognizer), 0.0) for recognizer in dropped)
        self._budget.release(charged)
