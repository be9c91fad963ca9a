"""Earcons: short sounds for listening / done / error, and an input mute while they play.

A speaker's microphone hears its own beeps; left alone the VAD would take a beep for speech
and open a session on it. So while an earcon plays, and for `mute_margin_s` after (output
latency and room echo), `input_muted()` is true and `mask_input()` turns captured frames
into digital silence of the same length (the endpointer's clock keeps running). Where to
apply the mask is the pipeline's choice: between utterances it prevents self-triggering; a
"listening" earcon played at the start of speech would blank the first word if applied there.

The shipped earcons (voiced/data/*.wav, 16 kHz mono 16-bit) were made once with sox:
  tone() { sox -n -r 16000 -c 1 -b 16 -e signed-integer $1.wav synth $2 $3 $4 fade q 0.005 $2 $5 vol 0.3; }
  listening: tone 0.08 sine 660 0.02 + tone 0.10 sine 880 0.04
  done:      tone 0.07 sine 784 0.01 + tone 0.16 sine 1047 0.08
  error:     tone 0.12 triangle 392 0.02 + tone 0.22 triangle 262 0.1   (joined with `sox a.wav b.wav out.wav`)
  rejected:  tone 0.09 sine 523 0.02 + tone 0.12 sine 440 0.05
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import shlex
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pydantic

from voiced.actions.process import child_environment
from voiced.config.loader import FrozenModel
from voiced.events import EventSink, event_dict

log = logging.getLogger(__name__)

Earcon = Literal["listening", "done", "error", "rejected"]
DATA_DIR = Path(str(resources.files("voiced") / "data"))


class FeedbackSettings(FrozenModel):
    """The `feedback:` section. An earcon set to null is not played."""

    enabled: bool = False
    listening: pydantic.FilePath | None = DATA_DIR / "listening.wav"
    done: pydantic.FilePath | None = DATA_DIR / "done.wav"
    error: pydantic.FilePath | None = DATA_DIR / "error.wav"
    # heard, but not a command (rejected): off by default; e.g. voiced/data/rejected.wav
    rejected: pydantic.FilePath | None = None
    # run without a shell, with the earcon's path appended; a string is split like a shell would
    player: tuple[str, ...] = ("aplay", "-q")
    mute_input: bool = True
    mute_margin_s: float = pydantic.Field(0.25, ge=0, le=5)

    @pydantic.field_validator("player", mode="before")
    @classmethod
    def _split_command(cls, value):
        return shlex.split(value) if isinstance(value, str) else value

    @pydantic.field_validator("player")
    @classmethod
    def _non_empty(cls, value):
        if not value:
            raise ValueError("player needs a command")
        return value


@functools.lru_cache(maxsize=16)
def wav_duration(path: Path) -> float:
    """Length of a WAV in seconds; 0 if it is not a WAV (the player may still play it)."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, wave.Error, EOFError):
        return 0.0


class MuteWindow:
    """Pure bookkeeping of when input must be ignored; times come from the caller's clock.

    While a playback runs, the end is not known yet: it is estimated as start + duration and
    never placed before now. After it ends, input stays muted for the margin."""

    def __init__(self, margin_s: float):
        self.margin_s = margin_s
        self._playing: int | None = None  # token of the playback in progress
        self._held = 0  # other sounds in progress (a spoken question), whose length is unknown
        self._expected_end = -math.inf
        self._until = -math.inf

    def started(self, token: int, now: float, duration_s: float) -> None:
        self._playing = token
        self._expected_end = now + duration_s

    def finished(self, token: int, now: float) -> None:
        """A playback ended; a superseded one (an earlier token) changes nothing."""
        if token == self._playing:
            self._playing = None
            self._until = max(self._until, now + self.margin_s)

    def hold(self) -> None:
        self._held += 1

    def release(self, now: float) -> None:
        self._held -= 1
        self._until = max(self._until, now + self.margin_s)

    def until(self, now: float) -> float | None:
        """When input may be used again, or None if it may be used now."""
        if self._held:
            return now + self.margin_s
        if self._playing is not None:
            return max(self._expected_end, now) + self.margin_s
        return self._until if now < self._until else None


class EarconPlayer:
    """Plays earcons with the configured command, one at a time (a new one cuts the old)."""

    def __init__(self, settings: FeedbackSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._window = MuteWindow(settings.mute_margin_s)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._waiters: list[threading.Thread] = []
        self._token = 0

    def play(self, earcon: Earcon) -> bool:
        """Start playing (non-blocking); False if feedback is off, the earcon unset or the player failed."""
        path = getattr(self.settings, earcon)
        if not self.settings.enabled or path is None:
            return False
        command = [*self.settings.player, str(path)]
        with self._lock:
            self._stop_current()
            try:
                # the actions' minimal environment: the player needs none of the daemon's secrets
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=child_environment(),
                )
            except OSError as exc:
                log.warning("cannot run earcon player %s: %s", shlex.join(command), exc)
                return False
            self._token += 1
            self._process = process
            self._window.started(self._token, self._clock(), wav_duration(Path(path)))
            waiter = threading.Thread(target=self._wait, args=(process, self._token, earcon), daemon=True)
            self._waiters = [t for t in self._waiters if t.is_alive()] + [waiter]
            waiter.start()
        return True

    @contextlib.contextmanager
    def holding_input(self) -> Iterator[None]:
        """Input muted while inside (another sound plays: a question said back), and for the
        margin after; whether or not earcons are enabled."""
        with self._lock:
            self._window.hold()
        try:
            yield
        finally:
            with self._lock:
                self._window.release(self._clock())

    def muted_until(self) -> float | None:
        """Clock time until which input is ignored, None if it is not (or mute_input is off)."""
        if not self.settings.mute_input:
            return None
        with self._lock:
            return self._window.until(self._clock())

    def input_muted(self) -> bool:
        return self.muted_until() is not None

    def mask_input(self, frame: bytes) -> bytes:
        """The frame, or silence of the same length while input is muted."""
        return bytes(len(frame)) if self.input_muted() else frame

    def close(self) -> None:
        """Stop any playback and reap the player processes."""
        with self._lock:
            self._stop_current()
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.join()

    def _stop_current(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _wait(self, process: subprocess.Popen, token: int, earcon: str) -> None:
        _, stderr = process.communicate()
        with self._lock:
            self._window.finished(token, self._clock())
            if self._process is process:
                self._process = None
        # terminated by a newer earcon (negative return code) is expected, not a failure
        if process.returncode > 0:
            log.warning(
                "earcon player failed on %s (exit %d): %s",
                earcon,
                process.returncode,
                stderr.decode(errors="replace").strip()[:500],
            )


EARCONS: dict[str, Earcon] = {
    "speech_started": "listening",
    "final": "done",
    "session_error": "error",
    "action_failed": "error",
    "conversation_failed": "error",
    "rejected": "rejected",
}


def earcon_for(event_type: str, wake_prompt: bool = False) -> Earcon | None:
    """The earcon of an event: listening at speech start, done on a result, error on failure,
    rejected when what was heard is not a command (it cuts the `done` before it). With
    `wake_prompt` (wake.prompt), listening plays on the wake word instead: the prompt to speak."""
    if wake_prompt and event_type in ("wake_detected", "speech_started"):
        return "listening" if event_type == "wake_detected" else None
    return EARCONS.get(event_type)


def feedback_sink(player: EarconPlayer, wake_prompt: bool = False) -> EventSink:
    """Plays each event's earcon (`earcon_for`)."""

    def play(event: Any) -> None:
        if (earcon := earcon_for(event_dict(event).get("type", ""), wake_prompt)) is not None:
            player.play(earcon)

    return play
