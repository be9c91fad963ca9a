"""Voice activity endpointing: feed fixed-size PCM frames, get speech events back.

The core is pure (no clock, no I/O): time is counted in audio frames, so the same frames
always give the same events. It is used on both sides of the wire: the daemon opens a
recognition session on SpeechStarted and half-closes it on SpeechEnded, and `voiced serve`
segments a stream into utterances with it.

Defaults follow what peers converged on (see README): 0.3 s of speech to start, 0.7 s of
silence to end (presets relaxed 1.25 s, aggressive 0.25 s), 0.5 s pre-roll so the first
word is never clipped, and a 15 s hard cap.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pydantic

from voiced.config.loader import FrozenModel

END_SILENCE_PRESETS = {"aggressive": 0.25, "default": 0.7, "relaxed": 1.25}
BYTES_PER_SAMPLE = 2  # 16-bit signed little-endian mono
VAD_RATES = (8000, 16000, 32000, 48000)  # what webrtcvad accepts
# Audio this far under the utterance's loudest frame (-24 dB) is quiet: the speaker has
# stopped, though webrtcvad may still say speech (it did for 50-160 ms after the last word's
# energy fell away, on the bench's voices over a noise floor). Over a loud noise floor nothing
# is this quiet, and only the VAD's silence counts.
QUIET_RATIO = 0.063


def loudness(pcm: bytes) -> float:
    """RMS of 16-bit PCM (0 for none)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0


class EndpointerSettings(FrozenModel):
    aggressiveness: int = pydantic.Field(2, ge=0, le=3, description="webrtcvad mode, 3 = most aggressive")
    frame_ms: Literal[10, 20, 30] = 30
    speech_start_s: float = pydantic.Field(0.3, gt=0, le=5)
    # fraction of the frames in the last speech_start_s that must be speech to start
    speech_start_ratio: float = pydantic.Field(0.8, gt=0, le=1)
    end_silence: Literal["aggressive", "default", "relaxed"] | float = "default"
    pre_roll_s: float = pydantic.Field(0.5, ge=0, le=5)
    min_utterance_s: float = pydantic.Field(0.5, ge=0, le=30)
    max_utterance_s: float = pydantic.Field(15.0, gt=0, le=300)

    @pydantic.field_validator("end_silence")
    @classmethod
    def _positive_silence(cls, value):
        if isinstance(value, float) and not 0 < value <= 10:
            raise ValueError("end_silence seconds must be in (0, 10]")
        return value

    @property
    def end_silence_s(self) -> float:
        if isinstance(self.end_silence, str):
            return END_SILENCE_PRESETS[self.end_silence]
        return self.end_silence

    def frame_bytes(self, sample_rate: int) -> int:
        return sample_rate * self.frame_ms // 1000 * BYTES_PER_SAMPLE

    def frames(self, seconds: float) -> int:
        """Whole frames covering at least `seconds` (a pre-roll of 0.5 s is never 0.48 s)."""
        return math.ceil(round(seconds * 1000 / self.frame_ms, 6))


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began. `audio` is the pre-roll plus the frames that triggered the start."""

    at_s: float  # audio time of the first frame in `audio`
    audio: bytes


@dataclass(frozen=True)
class SpeechAudio:
    """A frame inside an utterance, to be streamed as it comes."""

    audio: bytes


@dataclass(frozen=True)
class SpeechEnded:
    at_s: float  # audio time where the trailing silence began
    duration_s: float  # from start of speech to at_s


@dataclass(frozen=True)
class SpeechTimedOut:
    """The utterance hit max_utterance_s and was cut."""

    at_s: float
    duration_s: float


EndpointEvent = SpeechStarted | SpeechAudio | SpeechEnded | SpeechTimedOut


def webrtc_vad(settings: EndpointerSettings, sample_rate: int) -> Callable[[bytes], bool]:
    import webrtcvad

    if sample_rate not in VAD_RATES:
        raise ValueError(f"VAD needs one of {VAD_RATES} Hz, got {sample_rate}")
    vad = webrtcvad.Vad(settings.aggressiveness)
    return lambda frame: vad.is_speech(frame, sample_rate)


class Endpointer:
    """Frames in, events out. Feed exactly `frame_bytes` per call to `process`."""

    def __init__(
        self,
        settings: EndpointerSettings,
        sample_rate: int,
        is_speech: Callable[[bytes], bool] | None = None,
    ):
        self.settings = settings
        self.sample_rate = sample_rate
        self.frame_bytes = settings.frame_bytes(sample_rate)
        self.frame_s = settings.frame_ms / 1000
        self._is_speech = is_speech or webrtc_vad(settings, sample_rate)
        self._start_frames = max(1, settings.frames(settings.speech_start_s))
        self._needed_speech = max(1, round(self._start_frames * settings.speech_start_ratio))
        self._end_frames = max(1, settings.frames(settings.end_silence_s))
        self._min_frames = settings.frames(settings.min_utterance_s)
        self._max_frames = max(1, settings.frames(settings.max_utterance_s))
        # audio kept while listening: the start window plus the pre-roll before it
        self._history: deque[bytes] = deque(maxlen=self._start_frames + settings.frames(settings.pre_roll_s))
        # speech flags of the start window, with a running count (no rescan per frame)
        self._window: deque[bool] = deque(maxlen=self._start_frames)
        self._window_speech = 0
        self._frames_seen = 0
        self._in_speech = False
        self._utterance_frames = 0
        self._silent_run = 0
        self._loudest = 0.0  # the utterance's loudest frame
        self._quiet_run = 0  # frames since its last loud speech frame

    @property
    def now_s(self) -> float:
        return self._frames_seen * self.frame_s

    def process(self, frame: bytes) -> list[EndpointEvent]:
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame must be {self.frame_bytes} bytes, got {len(frame)}")
        speech = self._is_speech(frame)
        self._frames_seen += 1
        if self._in_speech:
            return self._continue_utterance(frame, speech)
        self._history.append(frame)
        if len(self._window) == self._start_frames:
            self._window_speech -= self._window[0]
        self._window.append(speech)
        self._window_speech += speech
        if self._window_speech < self._needed_speech:
            return []
        audio = b"".join(self._history)
        # the start window's speech, not the pre-roll's: a bang before the speech is no measure of it
        loudest = max(map(loudness, list(self._history)[-self._start_frames :]))
        start_s = self.now_s - len(self._history) * self.frame_s
        utterance_frames = len(self._window)
        self.reset()
        self._in_speech = True
        self._utterance_frames = utterance_frames
        self._loudest = loudest
        return [SpeechStarted(at_s=round(start_s, 6), audio=audio)]

    def _continue_utterance(self, frame: bytes, speech: bool) -> list[EndpointEvent]:
        self._utterance_frames += 1
        self._silent_run = 0 if speech else self._silent_run + 1
        level = loudness(frame)
        quiet = not speech or level < QUIET_RATIO * self._loudest
        self._loudest = max(self._loudest, level)
        self._quiet_run = self._quiet_run + 1 if quiet else 0
        events: list[EndpointEvent] = [SpeechAudio(frame)]
        if self._silent_run >= self._end_frames and self._utterance_frames >= self._min_frames:
            events.append(SpeechEnded(*self._finish(self._silent_run)))
        elif self._utterance_frames >= self._max_frames:
            events.append(SpeechTimedOut(*self._finish(0)))
        return events

    @property
    def quiet_s(self) -> float:
        """How long the utterance in progress has been quiet: silent, or far under its loudest
        (QUIET_RATIO); 0 outside of an utterance."""
        return self._quiet_run * self.frame_s if self._in_speech else 0.0

    def end_if_quiet(self, seconds: float) -> SpeechEnded | None:
        """End the utterance now if its speech has been followed by at least `seconds` of
        quiet (shorter than `end_silence`: the caller knows the speech is complete)."""
        if not self._in_speech or self._utterance_frames < self._min_frames:
            return None
        if self._quiet_run < max(1, self.settings.frames(seconds)):
            return None
        return SpeechEnded(*self._finish(self._quiet_run))

    def _finish(self, trailing_silence: int) -> tuple[float, float]:
        end_s = self.now_s - trailing_silence * self.frame_s
        duration = (self._utterance_frames - trailing_silence) * self.frame_s
        self.reset()
        return round(end_s, 6), round(duration, 6)

    def reset(self) -> None:
        """Back to listening, e.g. when the server reported end_of_utterance first."""
        self._in_speech = False
        self._history.clear()
        self._window.clear()
        self._window_speech = 0
        self._utterance_frames = 0
        self._silent_run = 0
        self._loudest = 0.0
        self._quiet_run = 0


class FrameSplitter:
    """Cuts audio chunks of any size into fixed-size frames, keeping the remainder."""

    def __init__(self, frame_bytes: int):
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._pending += chunk
        while len(self._pending) >= self.frame_bytes:
            frame = bytes(self._pending[: self.frame_bytes])
            del self._pending[: self.frame_bytes]
            yield frame

    def remainder(self) -> bytes:
        """The incomplete tail (padded with silence by callers that need a last frame)."""
        return bytes(self._pending)
