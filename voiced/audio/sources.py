"""Audio sources: microphone (PyAudio), WAV file, raw PCM stream; all yield fixed-size frames.

A source has a `sample_rate`, a `frames()` iterator of exactly `frame_bytes` of 16-bit mono
PCM each, and `close()`. File and stream sources end with their input; the microphone never
ends by itself: a read error or a vanished device is reported through `on_error` and the
stream is reopened with exponential backoff, so a flaky USB microphone cannot kill the daemon.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import pydantic

from voiced.audio.devices import DeviceNotFound, find_device, quiet_audio_libraries
from voiced.audio.recording import RecordingSettings
from voiced.audio.vad import BYTES_PER_SAMPLE, FrameSplitter
from voiced.config.loader import FrozenModel
from voiced.events import AudioErrorEvent
from voiced.protocol.vocabulary import SAMPLE_RATES, SampleRate

log = logging.getLogger(__name__)


class AudioSettings(FrozenModel):
    """The `audio:` section."""

    # input device: index, or a case-insensitive substring of its name; null = system default
    device: int | str | None = None
    sample_rate: SampleRate = 16000
    reopen_backoff_s: float = pydantic.Field(1.0, gt=0, le=60)
    reopen_backoff_max_s: float = pydantic.Field(30.0, gt=0, le=600)
    debug_recording: RecordingSettings | None = None


class AudioSource(Protocol):
    sample_rate: int
    frame_bytes: int

    def frames(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def _frames_of(chunks: Iterator[bytes], frame_bytes: int) -> Iterator[bytes]:
    """Fixed-size frames from chunks of any size; a last partial frame is padded with silence."""
    splitter = FrameSplitter(frame_bytes)
    for chunk in chunks:
        yield from splitter.feed(chunk)
    tail = splitter.remainder()
    if tail:
        yield tail + b"\x00" * (frame_bytes - len(tail))


class WavFileSource:
    """A 16-bit mono WAV file, as fast as it can be read or paced like a live microphone."""

    def __init__(self, path: str | Path, frame_ms: int, realtime: bool = False):
        self._wav = wave.open(str(path), "rb")
        if self._wav.getsampwidth() != BYTES_PER_SAMPLE or self._wav.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono WAV (convert: sox IN -c 1 -b 16 OUT.wav)")
        self.sample_rate = self._wav.getframerate()
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"{path}: {self.sample_rate} Hz; need one of {SAMPLE_RATES} (sox IN -r 16000 OUT.wav)")
        self.frame_bytes = self.sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
        self._realtime = realtime
        self._closed = threading.Event()

    def _chunks(self) -> Iterator[bytes]:
        samples_per_frame = self.frame_bytes // BYTES_PER_SAMPLE
        while not self._closed.is_set() and (chunk := self._wav.readframes(samples_per_frame)):
            yield chunk

    def frames(self) -> Iterator[bytes]:
        frames = _frames_of(self._chunks(), self.frame_bytes)
        return _paced(frames, self.frame_bytes / BYTES_PER_SAMPLE / self.sample_rate) if self._realtime else frames

    def close(self) -> None:
        self._closed.set()


def _paced(frames: Iterator[bytes], frame_s: float) -> Iterator[bytes]:
    """Yield each frame no earlier than its audio time (absolute schedule: no drift)."""
    start = time.monotonic()
    for index, frame in enumerate(frames):
        delay = start + index * frame_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame


class _StreamPump:
    """The one reader of a byte stream for the life of the process.

    A blocking read cannot be interrupted: a source closed by a reload would still take the
    next chunk of stdin and drop it. So a single thread reads the stream into a queue, and
    each source (the one before and the one after a reload) takes from that queue in turn."""

    # id -> (stream, pump): the stream is held so its id cannot be reused by another stream
    _pumps: dict[int, tuple[BinaryIO, _StreamPump]] = {}
    _lock = threading.Lock()
    CHUNK = 4096

    def __init__(self, stream: BinaryIO):
        self.chunks: queue.Queue[bytes] = queue.Queue(maxsize=64)  # ~8 s at 16 kHz: back-pressure
        threading.Thread(target=self._pump, args=(stream,), name="stdin", daemon=True).start()

    def _pump(self, stream: BinaryIO) -> None:
        try:
            while chunk := self._read(stream):
                self.chunks.put(chunk)
        finally:
            self.chunks.put(b"")  # end of stream, for whichever source reads it

    def _read(self, stream: BinaryIO) -> bytes:
        """What is available, up to CHUNK bytes. A real file descriptor is read with os.read:
        a thread blocked inside the BufferedReader of stdin holds its lock, and Python then
        aborts at exit ("could not acquire lock ... at interpreter shutdown")."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream
            return getattr(stream, "read1", stream.read)(self.CHUNK)
        return os.read(fd, self.CHUNK)

    @classmethod
    def of(cls, stream: BinaryIO) -> _StreamPump:
        with cls._lock:
            if id(stream) not in cls._pumps:
                cls._pumps[id(stream)] = (stream, cls(stream))
            return cls._pumps[id(stream)][1]


class RawStreamSource:
    """Raw 16-bit mono PCM from a byte stream, e.g. `arecord -f S16_LE -r 16000 | voiced run --input -`."""

    def __init__(self, stream: BinaryIO, sample_rate: int, frame_ms: int):
        self._pump = _StreamPump.of(stream)
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
        self._closed = threading.Event()

    def _chunks(self) -> Iterator[bytes]:
        while not self._closed.is_set():
            try:
                chunk = self._pump.chunks.get(timeout=0.1)
            except queue.Empty:
                continue
            if not chunk:
                self._pump.chunks.put(b"")  # the stream stays ended for a source opened later
                return
            yield chunk

    def frames(self) -> Iterator[bytes]:
        return _frames_of(self._chunks(), self.frame_bytes)

    def close(self) -> None:
        self._closed.set()


class MicrophoneSource:
    """PyAudio capture that survives the device: overflow is ignored, errors reopen with backoff."""

    def __init__(
        self,
        settings: AudioSettings,
        frame_ms: int,
        on_error: Callable[[AudioErrorEvent], None] = lambda event: None,
    ):
        import pyaudio  # the `mic` extra; imported here so file input works without PortAudio

        self._pyaudio = pyaudio
        self._settings = settings
        self.sample_rate: int = settings.sample_rate
        self._samples_per_frame = self.sample_rate * frame_ms // 1000
        self.frame_bytes = self._samples_per_frame * BYTES_PER_SAMPLE
        self._on_error = on_error
        self._closed = threading.Event()

    def frames(self) -> Iterator[bytes]:
        backoff = self._settings.reopen_backoff_s
        quiet_audio_libraries()
        last_error = None
        while not self._closed.is_set():
            pa = stream = None
            try:
                # a fresh PortAudio instance rescans devices, so a re-plugged microphone is found
                pa = self._pyaudio.PyAudio()
                stream = pa.open(
                    format=self._pyaudio.paInt16,
                    channels=1,
                    rate=self.sample_rate,
                    input=True,
                    input_device_index=find_device(pa, self._settings.device),
                    frames_per_buffer=self._samples_per_frame,
                )
                log.info("capturing from %s at %d Hz", self._settings.device or "default input", self.sample_rate)
                while not self._closed.is_set():
                    # an overflow (we were too slow) loses audio but is never fatal
                    yield stream.read(self._samples_per_frame, exception_on_overflow=False)
                    backoff = self._settings.reopen_backoff_s
                    last_error = None
            except (OSError, DeviceNotFound, ValueError) as exc:
                if self._closed.is_set():
                    break
                # said once; the same failure again (each reopen) only at info level
                log.log(
                    logging.WARNING if str(exc) != last_error else logging.INFO,
                    "audio input failed: %s; retrying in %.1f s",
                    exc,
                    backoff,
                )
                last_error = str(exc)
                self._on_error(
                    AudioErrorEvent(
                        source=str(self._settings.device) if self._settings.device is not None else "default input",
                        details=str(exc),
                        retry_in_s=backoff,
                    )
                )
                self._closed.wait(backoff)
                backoff = min(backoff * 2, self._settings.reopen_backoff_max_s)
            finally:
                if stream is not None:
                    stream.close()
                if pa is not None:
                    pa.terminate()

    def close(self) -> None:
        self._closed.set()


def open_source(
    input_path: str | None,
    settings: AudioSettings,
    frame_ms: int,
    realtime: bool,
    on_error: Callable[[AudioErrorEvent], None],
) -> AudioSource:
    """`--input FILE` (WAV), `--input -` (raw PCM on stdin at audio.sample_rate), or the microphone."""
    if input_path == "-":
        return RawStreamSource(sys.stdin.buffer, settings.sample_rate, frame_ms)
    if input_path:
        return WavFileSource(input_path, frame_ms, realtime=realtime)
    return MicrophoneSource(settings, frame_ms, on_error)
