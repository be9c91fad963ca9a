"""The wake word detector as a pure core: 16 kHz PCM frames in, `WakeDetected` out.

No clock and no I/O: time is counted in frames (like `voiced.endpointing.Endpointer`), and
the model is any `WakeScorer` (voiced.wake.engines loads the real ones), so a test can feed
the same audio twice and get the same events.

Per frame it asks the VAD whether the frame is speech. With the gate on, the wake model
only hears audio around speech: while the VAD hears none, frames wait in a history buffer
(long enough to hold a whole wake phrase, whose first sounds the VAD often misses); at the
first speech frame the buffer is scored at once, then every frame until `gate_hangover_s`
after the last speech. On silence and a steady noise floor the model then never runs.

A score at or above the threshold starts a detection, unless it comes within the
refractory period of the previous one; the detection is reported when the score stops
rising (at most `PEAK_WAIT_S` later). The score peaks a little after the phrase has ended
(it rises over the last syllable and a few model steps after), and with a low threshold it
crosses well before the end, so the peak, not the crossing, says where the phrase ended: at
the start of the pause that follows it when the VAD heard one in `PHRASE_END_LOOKBACK_S`
before the peak, else `detection_lag_s` before the peak.
The audio from there on is the start of the command ("alexa, turn on the light" said in
one breath), and the wake word itself never reaches the recognizer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voiced.audio.vad import EndpointerSettings, webrtc_vad
from voiced.wake.engines import SAMPLE_RATE, WakeScorer
from voiced.wake.settings import WakeSettings

# how far before the score's peak the pause after the wake phrase is looked for: the bench
# measured microWakeWord's peak up to ~0.35 s after the phrase's end
PHRASE_END_LOOKBACK_S = 0.45
# how long after crossing the threshold the score may still rise before it is reported
PEAK_WAIT_S = 0.3


@dataclass(frozen=True)
class WakeDetected:
    model: str
    score: float  # the peak score
    at_s: float  # audio time at the end of the frame where it was reported
    phrase_end_s: float  # audio time where the wake phrase ended: the command starts here
    command_audio: bytes  # the audio from phrase_end_s to at_s (already heard, after the phrase)


class WakeDetector:
    """Frames in, detections out. Feed exactly `frame_bytes` per call to `process`."""

    def __init__(
        self,
        settings: WakeSettings,
        endpointing: EndpointerSettings,
        scorer: WakeScorer,
        sample_rate: int = SAMPLE_RATE,
        is_speech: Callable[[bytes], bool] | None = None,
    ):
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"wake models take {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        self.settings = settings
        self.scorer = scorer
        self.threshold = scorer.threshold if settings.threshold is None else settings.threshold
        self.frame_bytes = endpointing.frame_bytes(sample_rate)
        self.frame_s = endpointing.frame_ms / 1000
        self._is_speech = is_speech or webrtc_vad(endpointing, sample_rate)
        self._refractory_frames = endpointing.frames(settings.refractory_s)
        self._hangover_frames = endpointing.frames(settings.gate_hangover_s)
        self._lag_frames = endpointing.frames(scorer.detection_lag_s)
        self._lookback_frames = endpointing.frames(PHRASE_END_LOOKBACK_S)
        self._peak_wait_frames = endpointing.frames(PEAK_WAIT_S)
        # the last frames heard with their VAD flags: where the phrase ended is looked for here
        self._recent: deque[tuple[bytes, bool]] = deque(
            maxlen=max(self._lookback_frames, self._lag_frames) + self._peak_wait_frames + 1
        )
        # a detection waiting for its score to peak: (peak score, frame count at the peak, at the crossing)
        self._pending: tuple[float, int, int] | None = None
        # frames the gate held back from the model (scored when it opens)
        self._unscored: deque[bytes] = deque(maxlen=endpointing.frames(settings.gate_history_s))
        self._gate_open_for = 0  # frames left before the gate shuts
        self._frames_seen = 0
        self._quiet_until = 0  # frame count before which detections are ignored (refractory)
        self.frames_scored = 0  # frames the model ran on (the gate's saving, for the bench)

    @property
    def now_s(self) -> float:
        return self._frames_seen * self.frame_s

    @property
    def gate_open(self) -> bool:
        return not self.settings.vad_gate or self._gate_open_for > 0

    def process(self, frame: bytes) -> list[WakeDetected]:
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame must be {self.frame_bytes} bytes, got {len(frame)}")
        speech = self._is_speech(frame)
        self._frames_seen += 1
        self._recent.append((frame, speech))
        if not self.settings.vad_gate or self._pending is not None:
            return self._score([frame])
        if speech:
            self._gate_open_for = self._hangover_frames
        elif self._gate_open_for == 0:
            self._unscored.append(frame)
            return []
        else:
            self._gate_open_for -= 1
        batch = [*self._unscored, frame]
        self._unscored.clear()
        return self._score(batch)

    def skip(self, frames: int = 1) -> None:
        """Frames went by unheard (a command is being listened to): keep time, forget the
        audio before them, and shut the gate."""
        self._frames_seen += frames
        self._recent.clear()
        self._unscored.clear()
        self._gate_open_for = 0
        self._pending = None

    def _score(self, frames: list[bytes]) -> list[WakeDetected]:
        self.frames_scored += len(frames)
        for score in self.scorer.scores(b"".join(frames)):
            if self._pending is None:
                if score >= self.threshold and self._frames_seen >= self._quiet_until:
                    self._pending = (score, self._frames_seen, self._frames_seen)
            elif score > self._pending[0]:
                self._pending = (score, self._frames_seen, self._pending[2])
            else:
                return self._detected()
        if self._pending is not None and self._frames_seen - self._pending[2] >= self._peak_wait_frames:
            return self._detected()
        return []

    def _detected(self) -> list[WakeDetected]:
        assert self._pending is not None  # called when a score crossed the threshold
        score, peak_frame, _ = self._pending
        self._pending = None
        self._quiet_until = self._frames_seen + self._refractory_frames
        # the model keeps the phrase in its state: without a reset it fires again on whatever follows
        self.scorer.reset()
        end = self._phrase_end_index(self._frames_seen - peak_frame)
        command = [audio for audio, _ in list(self._recent)[end:]]
        at_s = self.now_s
        return [
            WakeDetected(
                model=self.scorer.name,
                score=round(score, 4),
                at_s=round(at_s, 6),
                phrase_end_s=round(at_s - len(command) * self.frame_s, 6),
                command_audio=b"".join(command),
            )
        ]

    def _phrase_end_index(self, frames_since_peak: int) -> int:
        """Index in `_recent` of the first frame after the wake phrase: the latest start of a
        pause (speech then non-speech) within the lookback before the peak, else
        `detection_lag_s` before the peak."""
        flags = [speech for _, speech in self._recent]
        peak = len(flags) - 1 - frames_since_peak
        for index in range(peak, max(0, peak - self._lookback_frames), -1):
            if flags[index - 1] and not flags[index]:
                return index
        return max(0, peak + 1 - self._lag_frames)
