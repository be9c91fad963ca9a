"""The listening loop: the I/O edge of the pure ListeningCore (voiced.listen.core).

Three kinds of threads feed one inbox: the capture thread puts audio frames, each open
session's reader puts its recognition results, and the loop takes them in order, lets the
core decide, and carries the decisions out (open / send / half-close / cancel a session,
emit an event). Nothing here may end the daemon: a session error or a microphone error is
reported as an event, and listening goes on.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from voiced.audio.recording import SessionRecorder
from voiced.audio.sources import AudioSource
from voiced.events import EventSink, FinalEvent
from voiced.listen.core import CancelSession, Emit, FinishSession, ListeningCore, OpenSession, SendAudio
from voiced.ops.metrics import VoicedMetrics
from voiced.protocol.results import AudioDelivered, Final, Partial, SessionError

log = logging.getLogger(__name__)

INBOX_SIZE = 500  # ~15 s of 30 ms frames: a slow consumer blocks the file reader, not memory
# after the end of speech, counted from when the recognizer has all of the session's audio and
# re-armed by each of its results (it may be working through a backlog: input read faster than
# real time, a busy machine); finals take well under 1 s when audio is live
FINAL_TIMEOUT_S = 5.0
BATCH_FINAL_TIMEOUT_S = 30.0
CAPTURE_STOP_S = 5.0  # for the capture thread to leave the audio library when listening ends
IDLE_WAKE_S = 0.05  # how often an idle loop looks at stop requests


class Listener:
    """Runs the listening loop and carries out the core's decisions against real sessions."""

    def __init__(
        self,
        core: ListeningCore,
        client: Any,
        emit: EventSink,
        *,
        recorder: SessionRecorder | None = None,
        on_final: Callable[[FinalEvent], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        input_filter: Callable[[bytes], bytes] | None = None,
        metrics: VoicedMetrics | None = None,
        one_session_at_a_time: bool = False,
    ):
        self.core = core
        self.client = client
        self.emit = emit
        self.recorder = recorder
        self.on_final = on_final
        self.on_tick = on_tick  # every turn of the loop (at least every IDLE_WAKE_S): timeouts
        self.input_filter = input_filter
        self.metrics = metrics
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=INBOX_SIZE)
        self.sessions: dict[int, Any] = {}
        self._stop_requested = threading.Event()
        self._done = threading.Event()  # run() has returned: nobody takes from the inbox any more
        self._give_up_at = float("inf")
        # a file read as fast as possible would otherwise open sessions faster than the
        # recognizer answers them: hold the reader while a final is awaited (the order of
        # events and the memory use then match live audio; only the pauses are skipped)
        self._one_at_a_time = one_session_at_a_time
        self._may_read = threading.Event()
        self._may_read.set()
        # input already queued when a final came to be awaited (up to INBOX_SIZE frames):
        # it waits here, in order, instead of opening the next sessions meanwhile
        self._held: collections.deque[tuple[Any, ...]] = collections.deque()

    def stop(self, within_s: float) -> None:
        """Stop listening; sessions in flight get `within_s` to deliver their finals."""
        self._give_up_at = time.monotonic() + within_s
        self._stop_requested.set()

    def time_left(self, default: float) -> float:
        """Seconds left of the stop bound (`default` when no stop was asked for)."""
        return max(0.0, self._give_up_at - time.monotonic()) if self._stop_requested.is_set() else default

    def run(self, source: AudioSource) -> None:
        capture = threading.Thread(target=self._capture, args=(source,), name="capture", daemon=True)
        capture.start()
        try:
            self._listen(source)
        finally:
            self._done.set()
            source.close()
            # the capture thread may be inside PortAudio (reopening a device): it must leave
            # before the interpreter may exit, or a C library calling back then aborts it
            capture.join(CAPTURE_STOP_S)

    def _listen(self, source: AudioSource) -> None:
        input_ended = False
        while not (input_ended and self.core.idle):
            if self._stop_requested.is_set():
                if not input_ended:  # as if the input ended: half-close, then await the finals
                    source.close()
                    input_ended = True
                    self._carry_out(self.core.end_of_input(time.monotonic()))
                if time.monotonic() >= self._give_up_at:
                    for session in list(self.sessions):
                        self._close(session, cancel=True)
                    return
            item = self._next_item()
            now = time.monotonic()
            kind = item[0]
            if kind == "frame" and not input_ended:
                frame = item[1]
                if self.input_filter is not None and self.core.streaming is None:
                    frame = self.input_filter(frame)  # e.g. muted while our own earcon plays
                self._carry_out(self.core.feed_frame(frame, now))
            elif kind == "result":
                self._carry_out(self._on_result(item[1], item[2], now))
            elif kind == "closed":
                self._close(item[1])
                self._carry_out(self.core.on_closed(item[1]))
            elif kind == "end" and not input_ended:
                input_ended = True
                self._carry_out(self.core.end_of_input(now))
            self._carry_out(self.core.tick(now))
            if self.on_tick is not None:
                self.on_tick()
            if self._one_at_a_time:
                if self.core.awaiting_final:
                    self._may_read.clear()
                else:
                    self._may_read.set()

    def _next_item(self) -> tuple[Any, ...]:
        if self._held and not self.core.awaiting_final:
            return self._held.popleft()
        # Wake at the next final's deadline, and at least every IDLE_WAKE_S to see a stop request.
        timeout = IDLE_WAKE_S
        deadline = self.core.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return ("tick",)
        if self._one_at_a_time and item[0] in ("frame", "end") and (self.core.awaiting_final or self._held):
            self._held.append(item)
            return ("tick",)
        return item

    def _capture(self, source: AudioSource) -> None:
        try:
            for frame in source.frames():
                while not self._may_read.wait(0.1):
                    if self._stop_requested.is_set():
                        return
                if not self._put(("frame", frame)):
                    return
        except Exception:  # a source bug must still end the loop cleanly
            log.exception("audio source failed")
        finally:
            self._put(("end",))

    def _put(self, item: tuple[Any, ...]) -> bool:
        """Into the inbox, unless the loop has ended (then nothing would ever take it)."""
        while not self._done.is_set():
            try:
                self.inbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _on_result(self, session: int, result: Any, now: float) -> list:
        if isinstance(result, Partial):
            return self.core.on_partial(session, result.text, now, result.audio_s)
        if isinstance(result, Final):
            return self.core.on_final(
                session, result.text, result.confidence, result.end_of_utterance, now, result.reason, result.unsure
            )
        if isinstance(result, AudioDelivered):
            log.debug("session %d: the recognizer has received all of its audio", session)
            return self.core.on_delivered(session, now)
        if isinstance(result, SessionError):
            log.warning("session %d: %s %s", session, result.code, result.details)
            return self.core.on_error(session, result.code, result.details)
        return []

    def _read_results(self, session: int, handle: Any) -> None:
        try:
            for result in handle.events():
                self.inbox.put(("result", session, result))
        except Exception as exc:  # the client reports errors as events; this is a last resort
            log.exception("session %d reader failed", session)
            self.inbox.put(("result", session, SessionError("INTERNAL", str(exc))))
        finally:
            self.inbox.put(("closed", session))

    def _carry_out(self, decisions: list) -> None:
        for decision in decisions:
            try:
                self._carry_out_one(decision)
            except Exception as exc:
                session = getattr(decision, "session", 0)
                log.warning("session %d: %s failed: %s", session, type(decision).__name__, exc)
                self._carry_out(self.core.on_error(session, "UNAVAILABLE", str(exc)))
                self._close(session, cancel=True)

    def _carry_out_one(self, decision) -> None:
        if isinstance(decision, Emit):
            self.emit(decision.event)
            if isinstance(decision.event, FinalEvent) and self.on_final:
                self.on_final(decision.event)
        elif isinstance(decision, OpenSession):
            handle = self.client.session()
            self.sessions[decision.session] = handle
            threading.Thread(
                target=self._read_results,
                args=(decision.session, handle),
                name=f"session-{decision.session}",
                daemon=True,
            ).start()
            self._send(decision.session, decision.audio)
        elif isinstance(decision, SendAudio):
            self._send(decision.session, decision.audio)
        elif isinstance(decision, FinishSession):
            if handle := self.sessions.get(decision.session):
                handle.finish()
        elif isinstance(decision, CancelSession):
            self._close(decision.session, cancel=True)

    def _send(self, session: int, audio: bytes) -> None:
        if handle := self.sessions.get(session):
            handle.send(audio)
            if self.recorder:
                self.recorder.add(session, audio)
            if self.metrics:
                self.metrics.bytes_sent(len(audio))

    def _close(self, session: int, cancel: bool = False) -> None:
        handle = self.sessions.pop(session, None)
        if handle is not None and cancel:
            handle.cancel()
        if self.recorder:
            self.recorder.save(session)
