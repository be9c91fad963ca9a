"""The session logic of listening, as a pure core: audio frames and recognition results in,
decisions out (open / send / half-close / cancel a session, and events to report).

A session opens only when the endpointer hears speech, and starts with the pre-roll so the
first word is not clipped; it streams while speech lasts and is half-closed at the end of
speech (or at the maximum length, or early when the server reports `end_of_utterance`, or
when the live partial is a command that nothing can follow and a short silence came after
it); then its final result is awaited until a deadline. During silence nothing is sent at all.

No clock and no I/O here: callers pass `now` (monotonic seconds) and carry out the returned
decisions (voiced.daemon does, against a real recognizer), so tests can replay any
interleaving of audio and results exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pydantic

from voiced.audio.vad import (
    BYTES_PER_SAMPLE,
    Endpointer,
    EndpointerSettings,
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    SpeechTimedOut,
)
from voiced.events import (
    Event,
    FinalEvent,
    PartialEvent,
    SessionErrorEvent,
    SpeechEndedEvent,
    SpeechStartedEvent,
    WakeDetectedEvent,
    WakeTimeoutEvent,
)
from voiced.wake.detector import WakeDetected
from voiced.wake.gate import WakeTimedOut, WakeWordEndpointer

# Silence after a finished command before its session ends (bench/bench_endpointing.py chose it)
COMPLETE_SILENCE_S = 0.15


class SessionEndpointing(EndpointerSettings):
    """The daemon's `endpointing:` section: the endpointer's settings, and the early end of a
    session whose live partial is already a whole command that nothing can follow (only with
    the local commands model, whose grammar says so; open speech and the cloud always wait
    out `end_silence`)."""

    early_on_complete: bool = True
    # silence after a finished command before the session ends (instead of end_silence)
    complete_silence_s: float = pydantic.Field(COMPLETE_SILENCE_S, gt=0, le=10)


class Completion(Protocol):
    """What the commands' grammar says of a text (voiced.commands.completion)."""

    def finished(self, text: str) -> bool:
        """A whole command that nothing can follow."""
        ...

    def goes_on(self, text: str) -> bool:
        """Some command goes on from it."""
        ...


@dataclass(frozen=True)
class OpenSession:
    session: int
    audio: bytes  # pre-roll and the speech that triggered the start: send it first


@dataclass(frozen=True)
class SendAudio:
    session: int
    audio: bytes


@dataclass(frozen=True)
class FinishSession:
    """Half-close: no more audio; the server flushes and sends the final result."""

    session: int


@dataclass(frozen=True)
class CancelSession:
    session: int


@dataclass(frozen=True)
class Emit:
    event: Event


Decision = OpenSession | SendAudio | FinishSession | CancelSession | Emit


class ListeningCore:
    """When a final is given up on. Input read faster than real time (a file on stdin, an ALSA
    file device) or a busy machine makes a backlog at the recognizer: gRPC has sent a session's
    audio long before it is decoded, and sessions are answered in the order their audio came.
    So a session's final is due `final_timeout_s` after the recognizer has all of its audio
    (`on_delivered`) and after the recognizer's last answer (to any session: it is working
    through the backlog), and at the latest `max_wait_s` after the end of speech.

    With a `completion`, a session also ends once its latest partial is a finished command,
    `complete_silence_s` of quiet has followed the speech, and the recognizer says its
    partial has heard that quiet too (Partial.audio_s): reason `complete`. A partial read
    before the last word was over ("ten" for the start of "twenty") must not end a session.
    The partial may still have been wrong: if the final of a session ended so says a command
    that may go on ("set the temperature to twenty" where the partial had "eighteen", and
    the speaker was pausing before "two"), the speaker may have been cut short, and the final
    is reported empty, with why: nothing runs rather than the wrong command."""

    def __init__(
        self,
        endpointer: Endpointer | WakeWordEndpointer,
        final_timeout_s: float = 5.0,
        max_wait_s: float = 30.0,
        *,
        completion: Completion | None = None,
        complete_silence_s: float = COMPLETE_SILENCE_S,
    ):
        self.endpointer = endpointer
        self.final_timeout_s = final_timeout_s
        self.max_wait_s = max_wait_s
        self._completion = completion
        self._ended_early: set[int] = set()  # open sessions ended on a finished partial
        self.complete_silence_s = complete_silence_s
        self._heard_finished = False  # the streaming session's latest partial is a finished command
        self._heard_s = 0.0  # how much of the streaming session's audio its latest partial has heard
        self._sent_s = 0.0  # how much audio the streaming session has been sent
        self._undelivered: set[int] = set()  # ended sessions whose audio the recognizer lacks
        self._latest: dict[int, float] = {}  # ended session -> end of speech + max_wait_s
        self._bytes_per_s = endpointer.sample_rate * BYTES_PER_SAMPLE
        self._next_session = 1
        self._streaming: int | None = None
        # open sessions -> deadline for their end (None while still streaming)
        self._open: dict[int, float | None] = {}
        # open sessions that delivered a final: each session ends in a final or an error event
        self._answered: set[int] = set()

    @property
    def streaming(self) -> int | None:
        return self._streaming

    @property
    def idle(self) -> bool:
        """No session open: safe to stop or reload."""
        return not self._open

    @property
    def awaiting_final(self) -> bool:
        """A session has ended its speech and waits for its final result."""
        return any(deadline is not None for deadline in self._open.values())

    def next_deadline(self) -> float | None:
        deadlines = [d for d in self._open.values() if d is not None]
        return min(deadlines) if deadlines else None

    def feed_frame(self, frame: bytes, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        for event in self.endpointer.process(frame):
            if isinstance(event, SpeechStarted):
                decisions += self._open_session(event)
            elif isinstance(event, SpeechAudio):
                if self._streaming is not None:
                    self._sent_s += len(event.audio) / self._bytes_per_s
                    decisions.append(SendAudio(self._streaming, event.audio))
            elif isinstance(event, SpeechEnded):
                decisions += self._finish_streaming(now, "silence", event.at_s, event.duration_s)
            elif isinstance(event, SpeechTimedOut):
                decisions += self._finish_streaming(now, "max_length", event.at_s, event.duration_s)
            elif isinstance(event, WakeDetected):
                wake = WakeDetectedEvent(model=event.model, score=round(event.score, 3), audio_s=event.phrase_end_s)
                decisions.append(Emit(wake))
            elif isinstance(event, WakeTimedOut):
                decisions.append(Emit(WakeTimeoutEvent(audio_s=event.at_s, waited_s=event.waited_s)))
        return decisions + self._end_if_complete(now)

    def _end_if_complete(self, now: float) -> list[Decision]:
        """Half-close the streaming session if its command is finished, and enough quiet
        followed it (voiced.audio.vad.QUIET_RATIO), heard by the endpointer and by the partial."""
        if self._streaming is None or not self._heard_finished:
            return []
        speech_end_s = self._sent_s - self.endpointer.quiet_s  # in the session's audio
        if self._heard_s < speech_end_s + self.complete_silence_s:
            return []
        ended = self.endpointer.end_if_quiet(self.complete_silence_s)
        if ended is None:
            return []
        self._ended_early.add(self._streaming)
        return self._finish_streaming(now, "complete", ended.at_s, ended.duration_s)

    def _open_session(self, event: SpeechStarted) -> list[Decision]:
        session = self._next_session
        self._next_session += 1
        self._streaming = session
        self._heard_finished = False
        self._heard_s = 0.0
        self._sent_s = len(event.audio) / self._bytes_per_s
        self._open[session] = None
        opened_with = round(len(event.audio) / self._bytes_per_s, 3)
        return [
            Emit(SpeechStartedEvent(session=session, audio_s=event.at_s, pre_roll_s=opened_with)),
            OpenSession(session, event.audio),
        ]

    def _finish_streaming(
        self, now: float, reason: str, at_s: float | None = None, duration_s: float | None = None
    ) -> list[Decision]:
        session = self._streaming
        if session is None:
            return []
        self._streaming = None
        self._open[session] = self._latest[session] = now + self.max_wait_s
        self._undelivered.add(session)
        at_s = self.endpointer.now_s if at_s is None else at_s
        ended = SpeechEndedEvent(
            session=session, audio_s=round(at_s, 3), duration_s=round(duration_s or 0.0, 3), reason=reason
        )
        return [Emit(ended), FinishSession(session)]

    def _progress(self, now: float) -> None:
        """The recognizer answered: it is working. Each ended session it has the audio of gets
        the final timeout from now (within its latest time)."""
        for session, deadline in self._open.items():
            if deadline is not None and session not in self._undelivered:
                self._open[session] = min(self._latest[session], max(deadline, now + self.final_timeout_s))

    def on_partial(self, session: int, text: str, now: float, audio_s: float | None = None) -> list[Decision]:
        """A partial; an empty `text`: the hypothesis has not changed. `audio_s`: how much of
        the session's audio it has heard, if the recognizer says."""
        if session not in self._open:
            return []
        self._progress(now)
        decisions: list[Decision] = [Emit(PartialEvent(session=session, text=text))] if text else []
        if session == self._streaming and self._completion is not None:
            if text:
                self._heard_finished = self._completion.finished(text)
            # a recognizer that does not say what it has heard never ends a session early
            self._heard_s = audio_s if audio_s is not None else 0.0
            decisions += self._end_if_complete(now)
        return decisions

    def on_delivered(self, session: int, now: float) -> list[Decision]:
        """The recognizer has received all of an ended session's audio: its final is due."""
        if session in self._undelivered and self._open.get(session) is not None:
            self._undelivered.discard(session)
            self._open[session] = min(self._latest[session], now + self.final_timeout_s)
        return []

    def on_final(
        self,
        session: int,
        text: str,
        confidence: float,
        end_of_utterance: bool,
        now: float,
        reason: str = "",
        unsure: str = "",
    ) -> list[Decision]:
        if session not in self._open:
            return []
        # an empty final is reported too ("nothing recognized"): every session ends in a final
        # or an error, so whatever waits on it (LEDs, sounds, counters) is never left hanging
        self._answered.add(session)
        self._progress(now)  # the next utterance of this session, or other sessions, may still come
        text = text.strip()
        if session in self._ended_early and self._completion is not None and self._completion.goes_on(text):
            reason = f"heard {text!r}, which may go on, in a session ended early: the speaker may have been cut short"
            text = unsure = ""
        final = FinalEvent(session=session, text=text, confidence=confidence, reason=reason, unsure=unsure)
        decisions: list[Decision] = [Emit(final)]
        if end_of_utterance and session == self._streaming:
            # the server heard the end first: stop sending now, listen afresh for the next one
            self.endpointer.reset()
            decisions += self._finish_streaming(now, "server")
        return decisions

    def on_error(self, session: int, code: str, details: str) -> list[Decision]:
        if session not in self._open:
            return []
        self._forget(session)
        return [Emit(SessionErrorEvent(session=session, code=code, details=details))]

    def on_closed(self, session: int) -> list[Decision]:
        """The result stream ended (after the final, or the server ended the session)."""
        unanswered = session in self._open and session not in self._answered
        self._forget(session)
        # the server ended the call normally without any final: it recognized nothing
        return [Emit(FinalEvent(session=session, text="", confidence=0.0))] if unanswered else []

    def tick(self, now: float) -> list[Decision]:
        """Give up on sessions whose final result did not come in time."""
        decisions: list[Decision] = []
        for session, deadline in list(self._open.items()):
            if deadline is not None and deadline <= now:
                if session in self._undelivered:
                    details = (
                        f"the recognizer did not receive the audio within {self.max_wait_s:g} s after the end of speech"
                    )
                elif deadline >= self._latest[session]:
                    details = f"no final result within {self.max_wait_s:g} s after the end of speech"
                else:
                    details = (
                        f"no final result within {self.final_timeout_s:g} s after the end of speech (counted "
                        "from when the recognizer had all the audio and from its last answer)"
                    )
                self._forget(session)
                decisions += [
                    CancelSession(session),
                    Emit(SessionErrorEvent(session=session, code="DEADLINE_EXCEEDED", details=details)),
                ]
        return decisions

    def end_of_input(self, now: float) -> list[Decision]:
        """The audio source ended: half-close a session in progress so its words still count."""
        return self._finish_streaming(now, "input_end")

    def _forget(self, session: int) -> None:
        self._open.pop(session, None)
        self._ended_early.discard(session)
        self._answered.discard(session)
        self._undelivered.discard(session)
        self._latest.pop(session, None)
        if self._streaming == session:
            self._streaming = None
