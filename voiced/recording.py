"""Debug recording: the audio each session sent, saved as one WAV per session.

The directory is bounded by file count and total size (oldest recordings go first), so a
forgotten debug switch cannot fill the disk of a device that runs for months.
"""

from __future__ import annotations

import logging
import time
import wave
from pathlib import Path

from voiced.capture import RecordingSettings

log = logging.getLogger(__name__)

PATTERN = "session-*.wav"


class SessionRecorder:
    def __init__(self, settings: RecordingSettings, sample_rate: int):
        self.settings = settings
        self.sample_rate = sample_rate
        self._buffers: dict[int, bytearray] = {}
        settings.directory.mkdir(parents=True, exist_ok=True)

    def add(self, session: int, audio: bytes) -> None:
        self._buffers.setdefault(session, bytearray()).extend(audio)

    def save(self, session: int) -> Path | None:
        """Write the session's audio and prune; errors are logged, never raised (debug aid only)."""
        audio = self._buffers.pop(session, None)
        if not audio:
            return None
        seconds, nanoseconds = divmod(time.time_ns(), 10**9)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
        path = self.settings.directory / f"session-{stamp}.{nanoseconds:09d}-{session}.wav"
        try:
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(self.sample_rate)
                wav.writeframes(bytes(audio))
            self._prune()
        except OSError as exc:
            log.warning("debug recording to %s failed: %s", path, exc)
            return None
        return path

    def _prune(self) -> None:
        # names start with the save time, so name order is age order (mtimes can tie)
        files = sorted(self.settings.directory.glob(PATTERN), reverse=True)
        budget = self.settings.max_megabytes * 1_000_000
        total = 0
        for index, path in enumerate(files):
            total += path.stat().st_size
            if index >= self.settings.max_files or total > budget:
                path.unlink(missing_ok=True)
