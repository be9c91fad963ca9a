"""`voiced transcribe FILE`: stream a recording to a SpeechKit v2 server and print what it hears.

The file is sent in 100 ms pieces at real-time pace (as a microphone would send it) unless
`--fast`; every result is printed as it arrives, one line each, marked `partial:` or `final:`.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from voiced.protocol.results import Final, Partial, RecognitionEvent, SessionError
from voiced.protocol.vocabulary import SAMPLE_RATES
from voiced.speechkit.client import RecognitionSession, SpeechKitClient
from voiced.speechkit.config import RecognitionSettings

CHUNK_S = 0.1


class InputError(Exception):
    """The input cannot be sent as LINEAR16_PCM; the message says why and what to do."""


@dataclass(frozen=True)
class Recording:
    pcm: bytes  # 16-bit signed little-endian mono
    sample_rate: int


def _read_wav(data: bytes, rate: int | None) -> Recording:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, header_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InputError(f"not a PCM WAV file ({exc}); convert it: sox IN -r 16000 -c 1 -b 16 out.wav") from None
    if channels != 1 or width != 2:
        raise InputError(
            f"WAV must be mono 16-bit, this one has {channels} channel(s) of {8 * width}-bit samples; "
            "convert it: sox IN -c 1 -b 16 out.wav"
        )
    if rate is not None and rate != header_rate:
        raise InputError(f"--rate {rate} contradicts the WAV header ({header_rate} Hz); leave --rate out for WAV files")
    return Recording(pcm, header_rate)


def read_recording(data: bytes, rate: int | None) -> Recording:
    """A WAV file (recognized by its header, rate taken from it) or raw 16-bit PCM at `rate`."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        recording = _read_wav(data, rate)
    elif rate is None:
        raise InputError("raw PCM needs --rate (8000, 16000 or 48000); WAV files carry their rate in the header")
    elif len(data) % 2:
        raise InputError("raw PCM must be whole 16-bit samples, but the input has an odd number of bytes")
    else:
        recording = Recording(data, rate)
    if recording.sample_rate not in SAMPLE_RATES:
        raise InputError(
            f"{recording.sample_rate} Hz is not a SpeechKit v2 rate ({', '.join(map(str, SAMPLE_RATES))}); "
            "resample it: sox IN -r 16000 out.wav"
        )
    return recording


def chunks(recording: Recording, chunk_s: float = CHUNK_S) -> Iterator[bytes]:
    size = 2 * round(recording.sample_rate * chunk_s)
    for start in range(0, len(recording.pcm), size):
        yield recording.pcm[start : start + size]


def format_event(event: Partial | Final) -> str:
    return f"partial: {event.text}" if isinstance(event, Partial) else f"final:   {event.text}"


def send_all(session: RecognitionSession, recording: Recording, realtime: bool, stop: threading.Event) -> None:
    """Send the recording (paced like live audio when `realtime`), then half-close."""
    started = time.monotonic()
    for index, chunk in enumerate(chunks(recording)):
        if realtime and stop.wait(max(0.0, started + index * CHUNK_S - time.monotonic())):
            return
        if stop.is_set():
            return
        session.send(chunk)
    session.finish()


def transcribe(recording: Recording, client: SpeechKitClient, realtime: bool, out=sys.stdout) -> SessionError | None:
    """Stream `recording`, print results as they come; the error that ended the session, if any."""
    session = client.session()
    stop = threading.Event()  # the call ended early (error): stop pacing out audio nobody reads
    sender = threading.Thread(target=send_all, args=(session, recording, realtime, stop), daemon=True)
    sender.start()
    error: SessionError | None = None
    try:
        event: RecognitionEvent
        for event in session.events():
            if isinstance(event, SessionError):
                error = event
            elif isinstance(event, Partial | Final):
                print(format_event(event), file=out, flush=True)
    finally:
        stop.set()
        session.cancel()  # no-op after a normal end; aborts the call on Ctrl-C
    sender.join()
    return error


def main(args) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        recording = read_recording(data, args.rate)
    except OSError as exc:
        print(f"voiced transcribe: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"voiced transcribe: {args.file}: {exc}", file=sys.stderr)
        return 2
    settings = RecognitionSettings(
        endpoint=args.endpoint,
        language=args.language,
        model=args.model,
        partial_results=args.partial,
        sample_rate=recording.sample_rate,
    )
    with SpeechKitClient(settings, args.endpoint) as client:
        error = transcribe(recording, client, realtime=not args.fast)
    if error is not None:
        print(f"voiced transcribe: {error.code}: {error.details}", file=sys.stderr)
        return 1
    return 0
