"""Run a match's actions in order on a small thread pool; report, never raise.

`dispatch` returns at once. Each match's actions run one after another (a later action may
depend on an earlier one); different matches run concurrently up to `max_concurrent`.
Every failure becomes an `action_failed` event and a log line, and the next action runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from voiced.actions.config import ActionsSettings, ExecAction, HttpAction, MqttAction, SayAction, SoundAction
from voiced.actions.context import Match
from voiced.actions.events import ActionFailedEvent, ActionFinishedEvent, ActionsDoneEvent, ActionStartedEvent
from voiced.actions.execute import exec_action, say_action, say_text, sound_action
from voiced.actions.http import http_action
from voiced.actions.mqtt import MqttPublisher, mqtt_action
from voiced.actions.process import STOP_GRACE_S, RunningPrograms
from voiced.events import EventSink

log = logging.getLogger(__name__)

# Matches waiting beyond this many per worker are dropped: a burst must not pile up work.
QUEUE_PER_WORKER = 4
QUEUE_FULL = "too many commands in flight; dropped"


class ActionRunner:
    def __init__(self, settings: ActionsSettings, emit: EventSink):
        self._settings = settings
        self._emit = emit
        self._pool = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix="voiced-action")
        self._mqtt = MqttPublisher(settings.mqtt)
        self._programs = RunningPrograms(keep_spare=True)
        self._pending = threading.BoundedSemaphore(settings.max_concurrent * (1 + QUEUE_PER_WORKER))
        self._shut_down = False

    def dispatch(self, match: Match, session: int | None = None) -> Future | None:
        """Queue the match's actions; None if the queue is full (reported as a failure).
        `session`: the recognition session it was heard in, carried by the action events."""
        if not match.actions:
            return None
        future = self.submit(lambda: self._run_all(match, session))
        if future is None and not self._shut_down:
            self._failed(match, 0, "queue", QUEUE_FULL, session)
        return future

    def submit(self, job: Callable[[], None]) -> Future | None:
        """Queue other work that runs and speaks like actions (Home Assistant's answers): in
        the same bounds, and stopped with them. None if the queue is full or shut down."""
        if not self._pending.acquire(blocking=False):
            return None
        try:
            future = self._pool.submit(job)
        except RuntimeError:  # shut down
            self._pending.release()
            return None
        future.add_done_callback(lambda _: self._pending.release())
        return future

    def say(self, text: str, timeout_s: float) -> str:
        """Speak `text` as a `say` action does (raises ActionError); from a submitted job."""
        return say_text(text, self._settings, timeout_s, self._programs)

    def _run_all(self, match: Match, session: int | None) -> None:
        failed = 0
        for index, action in enumerate(match.actions):
            self._emit(ActionStartedEvent(match.intent, index, action.type, session))
            started = time.monotonic()
            try:
                detail = self._run_one(action, match)
            except Exception as exc:  # any failure of one action is reported, then we go on
                self._failed(match, index, action.type, str(exc) or type(exc).__name__, session)
                failed += 1
                continue
            self._emit(
                ActionFinishedEvent(
                    match.intent, index, action.type, round(time.monotonic() - started, 3), detail, session
                )
            )
        self._emit(ActionsDoneEvent(match.intent, failed, session))

    def _run_one(self, action, match: Match) -> str:
        if isinstance(action, ExecAction):
            detail, spoken = exec_action(action, match, self._programs)
            if spoken:
                say_text(spoken, self._settings, action.timeout_s, self._programs)
            return detail
        if isinstance(action, HttpAction):
            return http_action(action, match)
        if isinstance(action, MqttAction):
            return mqtt_action(action, match, self._mqtt)
        if isinstance(action, SoundAction):
            return sound_action(action, self._settings, self._programs)
        if isinstance(action, SayAction):
            return say_action(action, match, self._settings, self._programs)
        raise TypeError(f"unknown action {action!r}")

    def _failed(self, match: Match, index: int, kind: str, error: str, session: int | None = None) -> None:
        log.warning("action %d (%s) of %s failed: %s", index, kind, match.intent, error)
        self._emit(ActionFailedEvent(match.intent, index, kind, error, session))

    def shutdown(self, timeout: float) -> bool:
        """Take no more work; queued and running actions get `timeout` s to finish (a spoken
        command that was heard still runs), then queued ones not yet started are dropped.
        True if everything finished."""
        done = threading.Event()
        self._shut_down = True
        self._pool.shutdown(wait=False)  # dispatch refuses from now on

        def drain() -> None:
            self._pool.shutdown(wait=True)
            done.set()

        threading.Thread(target=drain, daemon=True).start()
        finished = done.wait(timeout)
        if not finished:
            self._pool.shutdown(wait=False, cancel_futures=True)
            # programs still running are stopped with everything they started: no action
            # outlives the daemon, and its worker threads end (the interpreter waits for them)
            self._programs.stop_all()
            done.wait(STOP_GRACE_S + 1)
        self._programs.close()
        self._mqtt.close()
        return finished
