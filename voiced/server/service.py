"""The gRPC edge: StreamingRecognize with auth, the session limits and a concurrency cap.

The method is registered without a request deserializer: `requests.RequestStream` reads raw
bytes in a thread of its own, parses them (a malformed message is INVALID_ARGUMENT), counts
the session's limits as messages arrive and reads only a bounded amount ahead (backpressure).
Decoding goes in slices, and between two slices the call is checked: a cancelled call stops
at once and frees its stream slot and decoder. Every way a call can go wrong ends that call
with a status and details; nothing here may take the server down.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator

import grpc

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.protocol.wire import result_response
from voiced.server.config import ServerSettings
from voiced.server.decoding import Decoders
from voiced.server.pool import PoolExhausted
from voiced.server.requests import (
    CLOSED,
    CallCancelled,
    CallFailed,
    RequestStream,
    audio_limit_failure,
    too_many_streams,
)
from voiced.server.session import InvalidAudio, Result, StreamRecognition
from voiced.server.spec import SessionSpec, SpecError, parse_spec

log = logging.getLogger(__name__)

SERVICE_NAME = stt.DESCRIPTOR.services_by_name["SttService"].full_name
# client bytes decoded between two checks of the call (cancelled? over a limit?): 0.25 s of
# 16 kHz PCM, a few ms of CPU on any model
DECODE_SLICE_BYTES = 8000


class SttService:
    """The servicer; `add_to(server)` registers it (raw request bytes, see the module doc)."""

    def __init__(
        self,
        settings: ServerSettings,
        engine: Decoders,
        credentials: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
        slots: threading.BoundedSemaphore | None = None,
    ):
        """`credentials`: (api keys, bearer tokens) as `settings.auth.accepted()` reads them;
        `slots`: the concurrent streams, when other front ends (Wyoming) share them."""
        self._settings = settings
        self._engine = engine
        # whether auth is on follows the configuration, never what the key files held
        self._auth_required = settings.auth.configured
        self._api_keys, self._bearer_tokens = credentials if credentials is not None else settings.auth.accepted()
        self._slots = slots if slots is not None else threading.BoundedSemaphore(settings.limits.max_streams)

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
            raise CallFailed(
                grpc.StatusCode.UNAUTHENTICATED,
                f"authorization {what}: send 'authorization: Api-Key <key>' or 'Bearer <IAM token>'",
            )

    def add_to(self, server: grpc.Server) -> None:
        handler = grpc.stream_stream_rpc_method_handler(
            self.StreamingRecognize,
            request_deserializer=None,
            response_serializer=stt.StreamingRecognitionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE_NAME, {"StreamingRecognize": handler})]
        )

    def StreamingRecognize(self, raw_requests: Iterator[bytes], context: grpc.ServicerContext):
        try:
            self._authenticate(context)
            if not self._slots.acquire(blocking=False):
                raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, too_many_streams(self._settings.limits))
            requests = RequestStream(raw_requests, self._settings.limits)
            try:
                # wakes a handler waiting for a message when the client cancels (or the call ends)
                context.add_callback(requests.cancel)
                yield from self._recognize(requests, context)
            finally:
                requests.close()
                self._slots.release()
        except CallFailed as failure:
            context.abort(failure.code, failure.details)
        except CallCancelled:
            log.debug("call cancelled by the client; its stream slot is free")

    def _recognize(
        self, requests: RequestStream, context: grpc.ServicerContext
    ) -> Iterator[stt.StreamingRecognitionResponse]:
        first = requests.next()
        if first is CLOSED:
            raise CallFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                "no message received: the first message must be the config (RecognitionConfig)",
            )
        if first.WhichOneof("streaming_request") != "config":
            raise CallFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message must be the config (RecognitionConfig), then audio_content",
            )
        try:
            spec = parse_spec(first.config, self._engine.languages, self._engine.grammars)
        except SpecError as error:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        requests.count_audio_as(2 * spec.sample_rate if spec.encoding == "LINEAR16_PCM" else None)
        recognizer = self._lend(spec)
        try:
            stream = StreamRecognition(
                spec,
                recognizer,
                self._settings.endpointing,
                self._settings.partial_interval_s,
                self._settings.profanity_words,
            )
            yield from self._stream(requests, stream, context)
        finally:
            self._engine.give_back(spec.language, spec.model, recognizer)

    def _lend(self, spec: SessionSpec):
        try:
            return self._engine.lend(spec.language, spec.model)
        except PoolExhausted as exc:
            raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
        except Exception as exc:
            log.exception("cannot load the %s/%s model", spec.language, spec.model)
            raise CallFailed(grpc.StatusCode.INTERNAL, f"recognizer failed to load: {exc}") from None

    def _stream(
        self, requests: RequestStream, stream: StreamRecognition, context: grpc.ServicerContext
    ) -> Iterator[stt.StreamingRecognitionResponse]:
        limits = self._settings.limits
        while (request := requests.next()) is not CLOSED:
            if request.WhichOneof("streaming_request") != "audio_content":
                raise CallFailed(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "only the first message may be a config; start a new session to change it",
                )
            audio = request.audio_content
            for start in range(0, len(audio), DECODE_SLICE_BYTES):
                if not context.is_active():
                    raise CallCancelled()
                requests.check()
                results = self._run(stream.feed, audio[start : start + DECODE_SLICE_BYTES])
                # counted in decoded audio too: Opus bytes say little about seconds
                if stream.audio_s > limits.max_audio_s:
                    raise audio_limit_failure(limits)
                yield from (result_response(r.final, r.text, r.confidence, r.words) for r in results)
        yield from (result_response(r.final, r.text, r.confidence, r.words) for r in self._run(stream.finish))

    @staticmethod
    def _run(step, *args) -> list[Result]:
        try:
            return step(*args)
        except InvalidAudio as exc:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except Exception as exc:  # an engine failure ends this call only
            log.exception("recognition failed")
            raise CallFailed(grpc.StatusCode.INTERNAL, f"recognition failed: {exc}") from None
