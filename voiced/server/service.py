"""The gRPC edge: StreamingRecognize with auth, the session limits and a concurrency cap.

Requests are read by a thread of their own into a queue, so the handler can tell "the
client sent nothing for 5 s" (DEADLINE_EXCEEDED, as the service does) from "decoding
takes a while". Every way a call can go wrong ends that call with a status and details;
nothing here may take the server down.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
from collections.abc import Iterator

import grpc
from google.protobuf.duration_pb2 import Duration

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.config import ServerSettings
from voiced.server.engine import Engine
from voiced.server.session import InvalidAudio, Result, StreamRecognition
from voiced.server.spec import SessionSpec, SpecError, parse_spec

log = logging.getLogger(__name__)

_CLOSED = object()  # the client half-closed


class _CallFailed(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def to_response(result: Result) -> stt.StreamingRecognitionResponse:
    words = [stt.WordInfo(start_time=_duration(w.start_s), end_time=_duration(w.end_s), word=w.word,
                          confidence=w.confidence) for w in result.words]
    alternative = stt.SpeechRecognitionAlternative(text=result.text, confidence=result.confidence, words=words)
    chunk = stt.SpeechRecognitionChunk(alternatives=[alternative], final=result.final,
                                       end_of_utterance=result.final)
    return stt.StreamingRecognitionResponse(chunks=[chunk])


class _RequestReader:
    """Pulls the request stream in a thread; `next` waits until the gap limit runs out."""

    def __init__(self, requests: Iterator, max_gap_s: float):
        self._queue: queue.Queue = queue.Queue()
        self._max_gap_s = max_gap_s
        self._last_arrival = time.monotonic()
        threading.Thread(target=self._pump, args=(requests,), name="stt-requests", daemon=True).start()

    def _pump(self, requests: Iterator) -> None:
        try:
            for request in requests:
                self._queue.put((time.monotonic(), request))
        except Exception:  # the call was cancelled or broken: the handler sees it ended
            pass
        self._queue.put((time.monotonic(), _CLOSED))

    def next(self):
        wait = self._last_arrival + self._max_gap_s - time.monotonic()
        try:
            arrival, item = self._queue.get(timeout=max(0.0, wait))
        except queue.Empty:
            raise _CallFailed(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"no message for {self._max_gap_s:g} s: the session is closed; "
                              "send audio at least every few seconds or start a new session") from None
        if item is not _CLOSED and arrival - self._last_arrival > self._max_gap_s:
            raise _CallFailed(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"{arrival - self._last_arrival:.1f} s between messages, at most "
                              f"{self._max_gap_s:g} s allowed")
        self._last_arrival = arrival
        return item


class SttService(stt_grpc.SttServiceServicer):
    def __init__(self, settings: ServerSettings, engine: Engine,
                 credentials: tuple[tuple[str, ...], tuple[str, ...]] | None = None):
        """`credentials`: (api keys, bearer tokens) as `settings.auth.accepted()` reads them."""
        self._settings = settings
        self._engine = engine
        # whether auth is on follows the configuration, never what the key files held
        self._auth_required = settings.auth.configured
        self._api_keys, self._bearer_tokens = credentials if credentials is not None else settings.auth.accepted()
        self._slots = threading.BoundedSemaphore(settings.limits.max_streams)

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        if not self._auth_required:
            return
        value = dict(context.invocation_metadata()).get("authorization", "")
        scheme, _, secret = value.partition(" ")
        accepted = {"Api-Key": self._api_keys, "Bearer": self._bearer_tokens}.get(scheme, ())
        # compare against every accepted secret: the time taken does not say which one was close
        matches = [hmac.compare_digest(secret.encode(), candidate.encode()) for candidate in accepted]
        if not secret or not any(matches):  # an empty credential never passes, whatever was configured
            # the details never echo what was sent: a mistyped header may be the secret itself
            what = "missing" if not value else f"invalid {scheme} credential" if accepted else "of an unknown scheme"
            raise _CallFailed(grpc.StatusCode.UNAUTHENTICATED,
                              f"authorization {what}: send 'authorization: Api-Key <key>' or 'Bearer <IAM token>'")

    def StreamingRecognize(self, request_iterator, context):
        try:
            self._authenticate(context)
            if not self._slots.acquire(blocking=False):
                raise _CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"too many concurrent streams (at most {self._settings.limits.max_streams})")
            try:
                yield from self._recognize(_RequestReader(request_iterator, self._settings.limits.max_gap_s))
            finally:
                self._slots.release()
        except _CallFailed as failure:
            context.abort(failure.code, failure.details)

    def _recognize(self, reader: _RequestReader) -> Iterator[stt.StreamingRecognitionResponse]:
        first = reader.next()
        if first is _CLOSED:
            return
        if first.WhichOneof("streaming_request") != "config":
            raise _CallFailed(grpc.StatusCode.INVALID_ARGUMENT,
                              "the first message must be the config (RecognitionConfig), then audio_content")
        try:
            spec = parse_spec(first.config, self._engine.languages, self._engine.grammars)
        except SpecError as error:
            raise _CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        recognizer = self._lend(spec)
        try:
            stream = StreamRecognition(spec, recognizer, self._settings.endpointing,
                                       self._settings.partial_interval_s, self._settings.profanity_words)
            yield from self._stream(reader, stream, first.ByteSize())
        finally:
            self._engine.give_back(spec.language, spec.model, recognizer)

    def _lend(self, spec: SessionSpec):
        try:
            return self._engine.lend(spec.language, spec.model)
        except Exception as exc:
            log.exception("cannot load the %s/%s model", spec.language, spec.model)
            raise _CallFailed(grpc.StatusCode.INTERNAL, f"recognizer failed to load: {exc}") from None

    def _stream(self, reader: _RequestReader, stream: StreamRecognition,
                received: int) -> Iterator[stt.StreamingRecognitionResponse]:
        limits = self._settings.limits
        while (request := reader.next()) is not _CLOSED:
            if request.WhichOneof("streaming_request") != "audio_content":
                raise _CallFailed(grpc.StatusCode.INVALID_ARGUMENT,
                                  "only the first message may be a config; start a new session to change it")
            received += request.ByteSize()
            if received > limits.max_bytes:
                raise _CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"session data limit reached ({limits.max_bytes} bytes): start a new session")
            results = self._run(stream.feed, request.audio_content)
            # counted in decoded audio: Opus bytes say little about seconds
            if stream.audio_s > limits.max_audio_s:
                raise _CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"session audio limit reached ({limits.max_audio_s:g} s): start a new session")
            yield from map(to_response, results)
        yield from map(to_response, self._run(stream.finish))

    @staticmethod
    def _run(step, *args) -> list[Result]:
        try:
            return step(*args)
        except InvalidAudio as exc:
            raise _CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except Exception as exc:  # an engine failure ends this call only
            log.exception("recognition failed")
            raise _CallFailed(grpc.StatusCode.INTERNAL, f"recognition failed: {exc}") from None
