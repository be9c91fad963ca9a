"""An endpointer that opens only after the wake word: a drop-in for `Endpointer` in
`voiced.listening.ListeningCore`, which then opens a session only on the wake word.

Three states, all in audio time (pure, like the endpointer):
- listening for the wake word: frames go to the `WakeDetector` only;
- awaiting the command, after a `WakeDetected`: a fresh endpointer hears the audio from the
  end of the wake phrase on (first the part heard before the detection, for a command said
  in the same breath), so the wake word is never part of the session's audio and the
  pre-roll cannot reach back into it. No speech within `command_timeout_s` gives
  `WakeTimedOut` and listening for the wake word again;
- in the command: the endpointer's events pass through until `SpeechEnded` or
  `SpeechTimedOut`, then back to listening for the wake word.

A question asked back awaits its answer as if the wake word had been heard (`await_answer`).

The endpointer's events keep their meaning and carry real audio times (the inner endpointer
only counts the frames it heard; its times are shifted back). `WakeDetected` and
`WakeTimedOut` come in the same lists; a core that does not know them ignores them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from voiced.audio.vad import (
    Endpointer,
    EndpointerSettings,
    EndpointEvent,
    FrameSplitter,
    SpeechEnded,
    SpeechStarted,
    SpeechTimedOut,
)
from voiced.wake.detector import WakeDetected, WakeDetector
from voiced.wake.engines import WakeScorer, load_scorer
from voiced.wake.settings import WakeSettings


@dataclass(frozen=True)
class WakeTimedOut:
    """The wake word was heard but no command started in time."""

    at_s: float
    waited_s: float


WakeGateEvent = EndpointEvent | WakeDetected | WakeTimedOut
_Event = TypeVar("_Event", bound=EndpointEvent)


class WakeWordEndpointer:
    """Frames in, events out, like `Endpointer`; speech only counts after the wake word."""

    def __init__(self, endpointer: Endpointer, detector: WakeDetector, command_timeout_s: float):
        if detector.frame_bytes != endpointer.frame_bytes:
            raise ValueError("the wake detector and the endpointer must take the same frames")
        self.endpointer = endpointer
        self.detector = detector
        self.settings = endpointer.settings
        self.sample_rate = endpointer.sample_rate
        self.frame_bytes = endpointer.frame_bytes
        self.frame_s = endpointer.frame_s
        self._timeout_frames = endpointer.settings.frames(command_timeout_s)
        self._wait_frames = self._timeout_frames  # of the wait in progress
        self._frames_seen = 0
        self._state: str = "wake"  # "wake", "awaiting" (the command) or "command"
        self._waiting_since = 0
        self._shift_s = 0.0  # real audio time minus the inner endpointer's time

    @property
    def state(self) -> str:
        return self._state

    @property
    def now_s(self) -> float:
        return self._frames_seen * self.frame_s

    def process(self, frame: bytes) -> list[WakeGateEvent]:
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame must be {self.frame_bytes} bytes, got {len(frame)}")
        self._frames_seen += 1
        if self._state == "wake":
            events: list[WakeGateEvent] = []
            for detected in self.detector.process(frame):
                events += [detected, *self._await_command(detected)]
            return events
        self.detector.skip()
        return self._command_frames([frame])

    @property
    def quiet_s(self) -> float:
        return self.endpointer.quiet_s if self._state == "command" else 0.0

    def end_if_quiet(self, seconds: float) -> SpeechEnded | None:
        """As `Endpointer.end_if_quiet`, in the command; then back to the wake word."""
        if self._state != "command" or (ended := self.endpointer.end_if_quiet(seconds)) is None:
            return None
        self._state = "wake"
        return self._real_time(ended)

    def reset(self) -> None:
        """Back to listening for the wake word (e.g. the server reported end_of_utterance)."""
        self.endpointer.reset()
        self._state = "wake"

    def await_answer(self, timeout_s: float) -> None:
        """Await speech without the wake word for `timeout_s` from now: a question was asked
        back (voiced.listen.confirmation), and its answer is said without the name. Only while
        listening for the wake word; speech in progress goes on as it is."""
        if self._state == "wake":
            self._wait(self._frames_seen, self.endpointer.settings.frames(timeout_s))

    def _await_command(self, detected: WakeDetected) -> list[WakeGateEvent]:
        splitter = FrameSplitter(self.frame_bytes)
        heard = list(splitter.feed(detected.command_audio))
        self._wait(self._frames_seen - len(heard), self._timeout_frames)
        return self._command_frames(heard)

    def _wait(self, from_frame: int, frames: int) -> None:
        """Await the command with a fresh endpointer, from `from_frame` on, for `frames`."""
        self.endpointer.reset()
        self._shift_s = from_frame * self.frame_s - self.endpointer.now_s
        self._state = "awaiting"
        self._waiting_since, self._wait_frames = self._frames_seen, frames

    def _command_frames(self, frames: list[bytes]) -> list[WakeGateEvent]:
        events: list[WakeGateEvent] = []
        for frame in frames:
            for event in self.endpointer.process(frame):
                if isinstance(event, SpeechStarted):
                    self._state = "command"
                elif isinstance(event, SpeechEnded | SpeechTimedOut):
                    self._state = "wake"
                events.append(self._real_time(event))
        if self._state == "awaiting" and self._frames_seen - self._waiting_since >= self._wait_frames:
            self.endpointer.reset()
            self._state = "wake"
            waited = (self._frames_seen - self._waiting_since) * self.frame_s
            events.append(WakeTimedOut(at_s=round(self.now_s, 6), waited_s=round(waited, 6)))
        return events

    def _real_time(self, event: _Event) -> _Event:
        if isinstance(event, SpeechStarted | SpeechEnded | SpeechTimedOut):
            return dataclasses.replace(event, at_s=round(event.at_s + self._shift_s, 6))
        return event


def wake_word_endpointer(
    wake: WakeSettings, endpointing: EndpointerSettings, sample_rate: int, scorer: WakeScorer | None = None
) -> WakeWordEndpointer:
    """The listening core's endpointer for `wake.mode: wake_word`, with the configured model
    loaded (or `scorer`); raises engines.MissingEngine when the library is not installed."""
    scorer = scorer or load_scorer(wake.wake_model)
    detector = WakeDetector(wake, endpointing, scorer, sample_rate)
    return WakeWordEndpointer(Endpointer(endpointing, sample_rate), detector, wake.command_timeout_s)
