"""Debug recording: the audio each session sent, saved as one WAV per session.

The directory is bounded by file count and total size (oldest recordings go first), so a
forgotten debug switch cannot fill the disk of a device that runs for months.
"""

from __future__ import annotations

import logging
import time
import wave
from pathlib import Path

import pydantic

from voiced.config.loader import FrozenModel

log = logging.getLogger(__name__)


class RecordingSettings(FrozenModel):
    """Debug recording: each session's audio saved as a WAV, oldest deleted past the bounds."""

    directory: Path
    max_files: int = pydantic.Field(50, ge=1)
    max_megabytes: float = pydantic.Field(50.0, gt=0)


PATTERN = "session-*.wav"


class SessionRecorder:
    def __init__(self, settings: RecordingSettings, sample_rate: int):
        self.settings = settings
        self.sample_rate = sample_rate
        self._buffers: dict[int, bytearray] = {}
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # checked at start (voiced.validation); later, a debug aid is never fatal
            log.warning("debug recording to %s is off: %s", settings.directory, exc.strerror)

    def add(self, session: int, audio: bytes) -> None:
        self._buffers.setdefault(session, bytearray()).extend(audio)

    def save(self, session: int) -> Path | None:
        """Write the session's audio and prune; errors are logged, never raised (debug aid only).
        A recording is written under a temporary name and renamed when complete, so a full disk
        leaves no empty or partial files behind (they would escape the bounds)."""
        audio = self._buffers.pop(session, None)
        if not audio:
            return None
        seconds, nanoseconds = divmod(time.time_ns(), 10**9)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
        path = self.settings.directory / f"session-{stamp}.{nanoseconds:09d}-{session}.wav"
        partial = path.with_name(f".{path.name}.part")
        try:
            with wave.open(str(partial), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(self.sample_rate)
                wav.writeframes(bytes(audio))
            partial.replace(path)
        except OSError as exc:
            log.warning("debug recording to %s failed: %s", path, exc.strerror or exc)
            partial.unlink(missing_ok=True)
            return None
        finally:
            self._prune()
        return path

    def _prune(self) -> None:
        # names start with the save time, so name order is age order (mtimes can tie)
        try:
            files = sorted(self.settings.directory.glob(PATTERN), reverse=True)
            budget = self.settings.max_megabytes * 1_000_000
            total = 0
            for index, path in enumerate(files):
                total += path.stat().st_size
                if index >= self.settings.max_files or total > budget:
                    path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("pruning debug recordings in %s failed: %s", self.settings.directory, exc.strerror or exc)
