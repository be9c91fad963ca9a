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
from typing import BinaryIO, Literal, Protocol

import pydantic

from voiced.endpointing import BYTES_PER_SAMPLE, FrameSplitter
from voiced.events import AudioErrorEvent

log = logging.getLogger(__name__)

SUPPORTED_RATES = (8000, 16000, 48000)  # what both webrtcvad and SpeechKit v2 accept


class RecordingSettings(pydantic.BaseModel):
    """Debug recording: each session's audio saved as a WAV, oldest deleted past the bounds."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    directory: Path
    max_files: int = pydantic.Field(50, ge=1)
    max_megabytes: float = pydantic.Field(50.0, gt=0)


class AudioSettings(pydantic.BaseModel):
    """The `audio:` section."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    # input device: index, or a case-insensitive substring of its name; null = system default
    device: int | str | None = None
    sample_rate: Literal[8000, 16000, 48000] = 16000
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
        if self.sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"{path}: {self.sample_rate} Hz; need one of {SUPPORTED_RATES} (sox IN -r 16000 OUT.wav)")
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


class DeviceNotFound(LookupError):
    pass


NO_INPUT_HINT = "list the inputs with `voiced devices`, then set audio.device to an index or a part of a name"
_QUIET_HANDLERS: list = []  # the C callbacks installed below, kept alive


def quiet_audio_libraries() -> None:
    """Silence ALSA's and JACK's error printing (once per process). PortAudio probes every
    device they know at each start, and each failure is printed on stderr: ~90 lines on a
    machine without JACK or a sound card, ~400 in 15 s of reopening a missing microphone,
    none of them meaning anything to a voiced user. Failures still reach voiced as errors."""
    if _QUIET_HANDLERS:
        return
    import ctypes

    try:
        alsa = ctypes.CDLL("libasound.so.2")
        # snd_lib_error_handler_t is variadic; a no-op that ignores its arguments is safe to call
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                   ctypes.c_char_p)(lambda *args: None)
        alsa.snd_lib_error_set_handler(handler)
        _QUIET_HANDLERS.append(handler)
    except (OSError, AttributeError):
        pass
    try:
        jack = ctypes.CDLL("libjack.so.0")
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
        jack.jack_set_error_function(handler)
        jack.jack_set_info_function(handler)
        _QUIET_HANDLERS.append(handler)
    except (OSError, AttributeError):
        pass
    _QUIET_HANDLERS.append(None)  # tried: not again


def default_input(pa) -> int:
    """The index of the system's default input; DeviceNotFound (with what to do) if none."""
    try:
        return pa.get_default_input_device_info()["index"]
    except OSError:
        found = input_devices(pa)
        names = ", ".join(f"{d['index']}: {d['name']!r}" for d in found)
        raise DeviceNotFound(f"no default audio input device{f' (inputs: {names})' if found else ''}: "
                             f"{NO_INPUT_HINT}") from None


def input_devices(pa) -> list[dict]:
    devices = (pa.get_device_info_by_index(i) for i in range(pa.get_device_count()))
    return [d for d in devices if d.get("maxInputChannels", 0) > 0]


def find_device(pa, device: int | str | None) -> int | None:
    """PyAudio index of the input device named by index or name substring (None = default)."""
    if device is None:
        return default_input(pa)
    candidates = input_devices(pa)
    if isinstance(device, int):
        if any(d["index"] == device for d in candidates):
            return device
        raise DeviceNotFound(f"no input device with index {device}: {NO_INPUT_HINT}")
    wanted = device.casefold()
    exact = [d for d in candidates if d["name"].casefold() == wanted]
    matches = exact or [d for d in candidates if wanted in d["name"].casefold()]
    if not matches:
        names = ", ".join(repr(d["name"]) for d in candidates) or "none"
        raise DeviceNotFound(f"no input device matching {device!r} (inputs: {names}): {NO_INPUT_HINT}")
    return matches[0]["index"]


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
        self.sample_rate = settings.sample_rate
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
                    format=self._pyaudio.paInt16, channels=1, rate=self.sample_rate, input=True,
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
                log.log(logging.WARNING if str(exc) != last_error else logging.INFO,
                        "audio input failed: %s; retrying in %.1f s", exc, backoff)
                last_error = str(exc)
                self._on_error(AudioErrorEvent(source=str(self._settings.device) if self._settings.device is not None
                                                else "default input", details=str(exc), retry_in_s=backoff))
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
    input_path: str | None, settings: AudioSettings, frame_ms: int, realtime: bool,
    on_error: Callable[[AudioErrorEvent], None],
) -> AudioSource:
    """`--input FILE` (WAV), `--input -` (raw PCM on stdin at audio.sample_rate), or the microphone."""
    if input_path == "-":
        return RawStreamSource(sys.stdin.buffer, settings.sample_rate, frame_ms)
    if input_path:
        return WavFileSource(input_path, frame_ms, realtime=realtime)
    return MicrophoneSource(settings, frame_ms, on_error)


def list_devices_main(args) -> int:
    """`voiced devices`: the input devices PortAudio sees, with what `audio.device` accepts."""
    import pyaudio

    quiet_audio_libraries()
    pa = pyaudio.PyAudio()
    try:
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
        devices = input_devices(pa)
        if not devices:
            print(f"no audio input devices found (PortAudio sees {pa.get_device_count()} devices, none with an "
                  "input): connect a microphone; the service user must be in the audio group", file=sys.stderr)
            return 1
        for d in devices:
            mark = "*" if d["index"] == default else " "
            print(f"{mark}{d['index']:3d}  {d['name']}  ({d['maxInputChannels']} ch, {d['defaultSampleRate']:.0f} Hz)")
        print("\n* = default input. Set `audio: device:` to an index or a part of the name.")
        return 0
    finally:
        pa.terminate()
