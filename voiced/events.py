"""Pipeline events and the sinks that show or export them.

Every stage reports what happened as a small frozen dataclass with a `type` name; the
daemon hands them to one `EventSink` (any callable taking an event). Other parts (command
matching, actions) emit their own events through the same sink: anything with a `type`
attribute and `to_dict()`, a dataclass with a `type` field, or a plain dict with a "type" key
is accepted. Sinks stamp the wall-clock time, so the pure cores stay free of clocks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TextIO

EventSink = Callable[[Any], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class SpeechStartedEvent(Event):
    type: ClassVar[str] = "speech_started"
    session: int
    audio_s: float  # audio time where the session's audio (pre-roll included) begins
    pre_roll_s: float


@dataclass(frozen=True)
class SpeechEndedEvent(Event):
    type: ClassVar[str] = "speech_ended"
    session: int
    audio_s: float
    duration_s: float
    # "silence", "complete" (a finished command, a short silence), "max_length", "server"
    # (end_of_utterance) or "input_end"
    reason: str


@dataclass(frozen=True)
class PartialEvent(Event):
    type: ClassVar[str] = "partial"
    session: int
    text: str


@dataclass(frozen=True)
class FinalEvent(Event):
    type: ClassVar[str] = "final"
    session: int
    text: str
    confidence: float
    reason: str = ""  # the in-process engine's why, when it recognized no command
    # the in-process engine's command rejected only for a number it was unsure of: the daemon
    # may say it back and run it on a "yes" (voiced.listen.confirmation)
    unsure: str = ""


@dataclass(frozen=True)
class SessionErrorEvent(Event):
    type: ClassVar[str] = "session_error"
    session: int
    code: str
    details: str


@dataclass(frozen=True)
class WakeDetectedEvent(Event):
    """The wake word was heard (wake.mode: wake_word): the next speech is the command."""

    type: ClassVar[str] = "wake_detected"
    model: str
    score: float
    audio_s: float  # where the wake phrase ended: the command's audio starts there


@dataclass(frozen=True)
class WakeTimeoutEvent(Event):
    """The wake word was heard but no command started within wake.command_timeout_s."""

    type: ClassVar[str] = "wake_timeout"
    audio_s: float
    waited_s: float


@dataclass(frozen=True)
class AudioErrorEvent(Event):
    """The audio input failed (device gone, read error); capture retries with backoff."""

    type: ClassVar[str] = "audio_error"
    source: str
    details: str
    retry_in_s: float


def event_dict(event: Any) -> dict[str, Any]:
    """The JSON object of any accepted event shape."""
    if isinstance(event, dict):
        return dict(event)
    if hasattr(event, "to_dict"):
        return event.to_dict()
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {"type": getattr(event, "type", type(event).__name__), **dataclasses.asdict(event)}
    raise TypeError(f"not an event: {event!r}")


class TextOutput(Protocol):
    """Where the writers print: a text stream, or the daemon's OutputStream around stdout."""

    def write(self, text: str, /) -> Any: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


class JsonlWriter:
    """One JSON object per line; thread-safe (actions emit from their worker threads)."""

    def __init__(self, stream: TextOutput = sys.stdout, clock: Callable[[], float] = time.time):
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        record = {"ts": round(self._clock(), 3), **event_dict(event)}
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class CaptionWriter:
    """For people: partials as a live caption line, finals and other events as lines.

    On a terminal the caption is rewritten in place with a carriage return; elsewhere (pipe,
    file, journal) carriage returns would only garble the output, so partials are not shown.
    """

    def __init__(self, stream: TextOutput = sys.stdout, live: bool | None = None):
        self._stream = stream
        self._live = stream.isatty() if live is None else live
        self._caption_width = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        record = event_dict(event)
        kind = record.get("type")
        with self._lock:
            if kind == "partial":
                if self._live:
                    self._caption(f"… {record['text']}")
                return
            if kind in ("speech_started", "speech_ended"):
                return  # the caption line itself shows that someone speaks
            self._caption("")
            if kind == "final":
                if record["text"]:  # an empty final: nothing recognized, nothing to print
                    self._stream.write(f"{record['text']}\n")
            else:
                details = {k: v for k, v in record.items() if k != "type"}
                self._stream.write(f"[{kind}] {json.dumps(details, ensure_ascii=False, default=str)}\n")
            self._stream.flush()

    def _caption(self, text: str) -> None:
        if not self._live or (not text and not self._caption_width):
            return
        # pad with spaces so a shorter caption fully covers the previous one
        self._stream.write("\r" + text.ljust(self._caption_width) + ("\r" if not text else ""))
        self._caption_width = len(text)
        self._stream.flush()


class TimelineLog:
    """Each utterance's timeline in the log: its milestones, timed from the start of speech.

        session 3: speech_ended +1.62 s
        session 3: final +1.85 s 'turn on the kitchen light'
        session 3: command_matched +1.85 s LightOn
        session 3: action_finished +2.10 s mqtt

    Partials are chatty: only the first one is a milestone."""

    MILESTONES = (
        "speech_started",
        "partial",
        "speech_ended",
        "final",
        "session_error",
        "command_matched",
        "rejected",
        "confirmation_asked",
        "confirmation_answered",
        "action_finished",
        "action_failed",
        "conversation_started",
        "conversation_answered",
        "conversation_failed",
    )

    def __init__(self, logger: logging.Logger):
        self._log = logger
        self._started: dict[int, float] = {}
        self._partial_seen: set[int] = set()

    def __call__(self, event: Any) -> None:
        record = event_dict(event)
        kind, session, ts = record.get("type"), record.get("session"), record.get("ts", time.time())
        if kind not in self.MILESTONES or session is None:
            return
        if kind == "speech_started":
            self._started[session] = ts
            if len(self._started) > 32:  # a session's actions may finish late: keep the recent ones
                oldest = next(iter(self._started))
                del self._started[oldest]
                self._partial_seen.discard(oldest)
        elif kind == "partial":
            if session in self._partial_seen:
                return
            self._partial_seen.add(session)
        offset = ts - self._started.get(session, ts)
        detail = (
            record.get("text")
            if kind in ("final", "partial")
            else record.get("action")
            or record.get("intent")
            or record.get("code")
            or record.get("reason")
            or record.get("error")
            or record.get("answer")
        )
        self._log.info("session %d: %s +%.2f s%s", session, kind, offset, f" {detail!r}" if detail else "")


class OutputStream:
    """The daemon's stdout for events. A reader that goes away (`voiced run | head -1`) must not
    stop anything: after the first broken pipe the output is dropped (said once in the log),
    and the descriptor points at /dev/null so the interpreter's last flush stays quiet."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._broken = False

    def isatty(self) -> bool:
        return not self._broken and self._stream.isatty()

    def write(self, text: str) -> None:
        self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def close(self) -> None:
        self.flush()

    def _guarded(self, operation: Callable[..., Any], *args: Any) -> None:
        if self._broken:
            return
        try:
            operation(*args)
        except (BrokenPipeError, ValueError) as exc:  # ValueError: the stream was closed
            self._broken = True
            log.warning(
                "event output closed (%s): events are no longer written; listening and actions go on",
                exc.strerror if isinstance(exc, OSError) else exc,
            )
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass  # not a real descriptor (a test's buffer): nothing will flush it later


def fan_out(*sinks: EventSink) -> EventSink:
    """One sink feeding several, each on its own: one that raises (a closed pipe, a bug) is
    logged once and never keeps the event from the others."""
    failed: set[int] = set()

    def emit(event: Any) -> None:
        for index, sink in enumerate(sinks):
            try:
                sink(event)
            except Exception as exc:
                if index not in failed:
                    failed.add(index)
                    log.warning(
                        "event sink %r failed (%s: %s); its further failures are logged at debug level",
                        sink,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    log.debug("event sink %r failed again: %s", sink, exc)

    return emit
