"""One Wyoming client connection of the local server: events in, the recognition session
(`session.StreamRecognition`, the v2 API's own) on a decoder the engine lends, events out.

The wyoming library reads and writes the events (`async_read_event`, `AsyncEventHandler`).
Decoding is blocking work (pocketsphinx keeps the GIL, a Whisper final takes its while), so
it runs in the listener's thread pool, a slice of audio at a time: the loop goes on serving
other connections, and a closed connection or a stop waits at most for the slice in hand. A
decoder goes back to its pool only once no slice of it is running.

What ends a request (a refused model or audio format, audio out of order, a session limit,
the server busy, an engine failure) is answered with an `error` event, then the server
closes its side and drops whatever the client still sends until it closes too: a client
waiting for its `transcript` (Home Assistant reads nothing else) learns at once that none
comes. An event type it does not serve gets an `error` event, and the connection goes on (a
newer client's event must not break its request). Nothing a client sends can stop the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Protocol

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info, SelectProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from voiced.server.config import ServerSettings
from voiced.server.decoding import Decoders, Recognizer
from voiced.server.pool import PoolExhausted
from voiced.server.requests import audio_limit_details, data_limit_details, too_many_streams
from voiced.server.service import DECODE_SLICE_BYTES
from voiced.server.session import StreamRecognition
from voiced.server.spec import SessionSpec, shown
from voiced.server.wyoming_asr import (
    PROGRAM,
    RequestError,
    TranscriptText,
    audio_format,
    choose_model,
    has_transcript_streaming,
    session_spec,
)

log = logging.getLogger(__name__)


class Listener(Protocol):
    """What a connection uses of the listener that accepted it (wyoming_server.WyomingListener)."""

    settings: ServerSettings
    engine: Decoders
    info: Info
    executor: concurrent.futures.ThreadPoolExecutor
    stopping: bool

    def take_slot(self) -> bool: ...

    def free_slot(self) -> None: ...


class GuardedReader:
    """The connection's StreamReader as `async_read_event` reads it (readline, readexactly),
    each event checked before the library parses it: the library reads a payload of any size
    it is told into memory, and a header without a type, or whose data is no JSON object,
    escapes it as an exception. It also drops the header's `version` (the peer's wyoming
    release), which says whether the peer knows transcript streaming: kept here."""

    def __init__(self, reader: asyncio.StreamReader, max_bytes: int):
        self._reader = reader
        self._max_bytes = max_bytes
        self._data_length = 0  # of the event being read: its data is the next readexactly
        self.peer_version: object = None
        self.problem: str | None = None  # why the last read failed, for the client

    def _refuse(self, problem: str):
        self.problem = problem
        raise ValueError(problem)  # what async_read_event takes for "no more events"

    async def readline(self) -> bytes:
        try:
            line = await self._reader.readline()
        except ValueError:  # asyncio's line limit (64 KiB)
            self._refuse("an event header is too long")
        if not line:
            return line
        try:
            header = json.loads(line)
        except ValueError:
            self._refuse("an event header is not a line of JSON")
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            self._refuse("an event header must be a JSON object with a string 'type'")
        if not isinstance(header.get("data", {}), dict):
            self._refuse("an event's 'data' must be a JSON object")
        for length in ("data_length", "payload_length"):
            value = header.get(length) or 0
            if not isinstance(value, int) or value < 0:
                self._refuse(f"an event's {length} must be a whole number")
            if value > self._max_bytes:
                self._refuse(f"an event of {value} bytes is over the limit of {self._max_bytes}")
        self._data_length = header.get("data_length") or 0
        self.peer_version = header.get("version")
        return line

    async def readexactly(self, size: int) -> bytes:
        data = await self._reader.readexactly(size)
        if self._data_length:
            self._data_length = 0
            try:
                if not isinstance(json.loads(data), dict):
                    raise ValueError
            except ValueError:
                self._refuse("an event's additional data must be a JSON object")
        return data


@dataclass
class AudioStream:
    """One audio-start ... audio-stop: its session, on a decoder lent by the engine."""

    spec: SessionSpec
    audio_format: tuple[int, int, int]
    recognizer: Recognizer
    recognition: StreamRecognition
    streaming: bool  # the client gets transcript-start / -chunk / -stop
    transcript: TranscriptText = field(default_factory=TranscriptText)
    received_bytes: int = 0
    work: concurrent.futures.Future | None = None  # the slice being decoded


class AsrHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener: Listener):
        self.guarded = GuardedReader(reader, listener.settings.limits.max_message_bytes)
        # the library only calls readline and readexactly, which GuardedReader has
        super().__init__(self.guarded, writer)  # type: ignore[arg-type]
        self._listener = listener
        self._settings = listener.settings
        self._model: tuple[str, str] | None = None  # (model, language) of the last transcribe
        self.stream: AudioStream | None = None
        self._closing_until: float | None = None  # the request ended: what the client still sends is dropped

    async def run(self) -> None:
        """The library's loop, with the session's gap limit while a stream is open (a decoder
        is held), a bound on closing, and an `error` event for an event that cannot be read."""
        gap = self._settings.limits.max_gap_s
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._read_deadline()):
                        event = await async_read_event(self.reader)
                except TimeoutError:
                    if not self._closing_until:
                        await self._end(
                            RequestError(
                                "timeout",
                                f"no event within {gap:g} s while a stream is open: "
                                "it is closed (send the audio as it comes, then "
                                "audio-stop)",
                            )
                        )
                    return
                if event is None:
                    if self.guarded.problem and not self._closing_until:
                        await self._end(RequestError("bad-event", self.guarded.problem))
                    return
                if self._closing_until:
                    continue
                try:
                    if not await self.handle_event(event):
                        return
                except RequestError as ended:
                    await self._end(ended)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("Wyoming client gone")
        finally:
            self.drop_stream()
            self.writer.close()

    def _read_deadline(self) -> float | None:
        if self._closing_until is not None:
            return self._closing_until
        if self.stream is not None:
            return asyncio.get_running_loop().time() + self._settings.limits.max_gap_s
        return None  # an idle connection holds no decoder

    async def _end(self, ended: RequestError) -> None:
        """Answer `error`, close this side, and drop what the client still sends (for at most
        max_gap_s) until it closes: closing at once could reset the connection before the
        client has read the error."""
        self.drop_stream()
        log.info("Wyoming request ended: %s (%s)", ended.text, ended.code)
        await self.write_event(Error(text=ended.text, code=ended.code).event())
        if self.writer.can_write_eof():
            self.writer.write_eof()
        self._closing_until = asyncio.get_running_loop().time() + self._settings.limits.max_gap_s

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self._listener.info.event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=_parse(Ping, event).text).event())
        elif SelectProgram.is_type(event.type):
            name = _parse(SelectProgram, event).name
            if name != PROGRAM:
                raise RequestError(
                    "unknown-program",
                    f"program '{shown(str(name))}' is not served here; this server's ASR program is {PROGRAM!r}",
                )
        elif Transcribe.is_type(event.type):
            if self.stream is not None:
                raise RequestError(
                    "stream-open", "transcribe while an audio stream is open: end it with audio-stop first"
                )
            self._model = self._choose(_parse(Transcribe, event))
        elif AudioStart.is_type(event.type):
            await self._start(_parse(AudioStart, event))
        elif AudioChunk.is_type(event.type):
            await self._feed(_parse(AudioChunk, event))
        elif AudioStop.is_type(event.type):
            await self._stop()
            return not self._listener.stopping  # a stopping server closes once the request is answered
        else:
            await self.write_event(
                Error(
                    code="unknown-event",
                    text=(
                        f"event type '{shown(event.type)}' is not served here (ignored): this is a Wyoming ASR server "
                        "(describe, transcribe, audio-start, audio-chunk, audio-stop)"
                    ),
                ).event()
            )
        return True

    def _choose(self, request: Transcribe) -> tuple[str, str]:
        return choose_model(request, self._listener.engine.languages, self._listener.engine.grammars)

    async def _start(self, start: AudioStart) -> None:
        if self.stream is not None:
            raise RequestError("stream-open", "audio-start while an audio stream is open: end it with audio-stop")
        fmt = audio_format(start)
        model, language = self._model or self._choose(Transcribe())
        self._model = None  # a transcribe is for the stream that follows it
        spec = session_spec(model, language, fmt[0])
        listener = self._listener
        if not listener.take_slot():
            raise RequestError("busy", too_many_streams(self._settings.limits))
        try:
            lending = listener.executor.submit(listener.engine.lend, language, model)
        except RuntimeError:  # the pool is shut down: the server stops
            listener.free_slot()
            raise RequestError("stopping", "the server is stopping") from None
        try:
            recognizer = await asyncio.wrap_future(lending)
        except BaseException as exc:  # refused or failed; or cancelled by a stop, the lend maybe still running
            lending.add_done_callback(functools.partial(self._return_lent, language, model))
            if isinstance(exc, PoolExhausted):
                raise RequestError("busy", str(exc)) from None
            if isinstance(exc, Exception):
                log.exception("cannot load the %s/%s model", language, model)
                raise RequestError("recognition-failed", f"recognizer failed to load: {exc}") from None
            raise
        recognition = StreamRecognition(
            spec,
            recognizer,
            self._settings.endpointing,
            self._settings.partial_interval_s,
            self._settings.profanity_words,
        )
        self.stream = AudioStream(
            spec, fmt, recognizer, recognition, streaming=has_transcript_streaming(self.guarded.peer_version)
        )
        if self.stream.streaming:
            await self.write_event(TranscriptStart(language=language).event())

    def _return_lent(self, language: str, model: str, lending: concurrent.futures.Future) -> None:
        """After a lend whose stream never opened: its decoder (if it came) back, its slot free."""
        try:
            if not lending.cancelled() and lending.exception() is None:
                self._listener.engine.give_back(language, model, lending.result())
        finally:
            self._listener.free_slot()

    async def _feed(self, chunk: AudioChunk) -> None:
        stream = self.stream
        if stream is None:
            raise RequestError(
                "audio-not-started",
                "audio-chunk before audio-start: send transcribe (optional), audio-start, then the audio",
            )
        if (chunk.rate, chunk.width, chunk.channels) != stream.audio_format:
            rate, width, channels = stream.audio_format
            raise RequestError(
                "unsupported-audio",
                f"audio-chunk of rate {chunk.rate}, width {chunk.width}, "
                f"channels {chunk.channels} in a stream that audio-start "
                f"opened as rate {rate}, width {width}, channels {channels}",
            )
        limits = self._settings.limits
        stream.received_bytes += len(chunk.audio)
        if stream.received_bytes > limits.max_bytes:
            raise RequestError("limit", data_limit_details(limits))
        if stream.recognition.audio_s + len(chunk.audio) / 2 / stream.spec.sample_rate > limits.max_audio_s:
            raise RequestError("limit", audio_limit_details(limits))
        for start in range(0, len(chunk.audio), DECODE_SLICE_BYTES):
            results = await self._decode(stream.recognition.feed, chunk.audio[start : start + DECODE_SLICE_BYTES])
            await self._send_chunks(stream.transcript.add(results))

    async def _stop(self) -> None:
        stream = self.stream
        if stream is None:
            raise RequestError("audio-not-started", "audio-stop without audio-start")
        await self._send_chunks(stream.transcript.add(await self._decode(stream.recognition.finish)))
        # decoder and slot are free before the client hears the end: a next request sent on the
        # transcript (over either API) must never find this stream still holding them
        self.drop_stream()
        await self.write_event(Transcript(text=stream.transcript.text, language=stream.spec.language).event())
        if stream.streaming:
            await self.write_event(TranscriptStop().event())

    async def _send_chunks(self, chunks: list[str]) -> None:
        if self.stream is not None and self.stream.streaming:
            for text in chunks:
                await self.write_event(TranscriptChunk(text=text).event())

    async def _decode(self, step, *args):
        stream = self.stream
        try:
            stream.work = self._listener.executor.submit(step, *args)
        except RuntimeError:  # the pool is shut down: the server stops
            raise RequestError("stopping", "the server is stopping") from None
        try:
            return await asyncio.wrap_future(stream.work)
        except Exception as exc:  # an engine failure ends this request only
            log.exception("recognition failed")
            raise RequestError("recognition-failed", f"recognition failed: {exc}") from None

    def drop_stream(self) -> None:
        """Give the stream's decoder back once no slice of it is running; free its slot."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        listener = self._listener

        def give_back(_=None) -> None:
            try:
                listener.engine.give_back(stream.spec.language, stream.spec.model, stream.recognizer)
            finally:
                listener.free_slot()

        if stream.work is not None and not stream.work.done():
            stream.work.add_done_callback(give_back)
        else:
            give_back()


def _parse(kind, event: Event):
    """The library's reading of an event of a type this server serves, or the client's error."""
    try:
        return kind.from_event(event)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RequestError("bad-event", f"{event.type}: a required field is missing or of the wrong type") from None
