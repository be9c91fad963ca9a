"""The gRPC edge of the SpeechKit v2 client: a channel, and one streaming call per session.

A session's request stream is fed from a queue: the config message first, then one audio
message per `send()`, until `finish()` half-closes it. Its results are read by iterating
`events()` (one thread sends, another reads). Every failure of the call, including an
unreachable server, arrives as a `SessionError` event, never as an exception.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from voiced import __version__
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.protocol.results import RecognitionEvent, SessionError
from voiced.protocol.wire import audio_request, response_events
from voiced.speechkit.config import RecognitionSettings

MetadataProvider = Callable[[], list[tuple[str, str]]]

_END = object()  # closes the request stream
_POLLER_LINGER_S = 0.3


# gRPC's reconnect backoff grows to 120 s by default: a recovered endpoint would go unnoticed
# that long. Capped here, so "the primary answers again" is seen within seconds.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


# A target naming several servers (an address list, or a DNS name with several records)
# spreads calls over them with gRPC's round_robin policy, which skips servers that are down;
# the default (pick_first) would send every call to the first one that answers
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
BALANCED_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def open_channel(settings: RecognitionSettings, target: str) -> grpc.Channel:
    options = [("grpc.primary_user_agent", f"voiced/{__version__}"), *RECONNECT_OPTIONS]
    if target.startswith(BALANCED_SCHEMES):
        options.append(("grpc.service_config", ROUND_ROBIN))
    if not settings.uses_tls(target):
        return grpc.insecure_channel(target, options=options)
    roots = settings.ca_file.read_bytes() if settings.ca_file is not None else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), options=options)


def config_request(settings: RecognitionSettings) -> stt.StreamingRecognitionRequest:
    """The first message of every session: what the recognizer is asked for."""
    specification = stt.RecognitionSpec(
        language_code=settings.language,
        model=settings.model,
        profanity_filter=settings.profanity_filter,
        partial_results=settings.partial_results,
        raw_results=settings.raw_results,
        audio_encoding=settings.encoding,
        sample_rate_hertz=settings.sample_rate,
    )
    config = stt.RecognitionConfig(specification=specification)
    if settings.folder_id is not None:  # sent by a service account, the service refuses it
        config.folder_id = settings.folder_id
    return stt.StreamingRecognitionRequest(config=config)


class AudioEncoder:
    """A session's PCM as the audio messages of its configured encoding, in order.

    LINEAR16_PCM goes as it is; OGG_OPUS is one Ogg Opus stream per session (each session's
    config starts a new one), a page per piece, ended by `finish()`."""

    def __init__(self, settings: RecognitionSettings):
        self._opus = None
        if settings.encoding == "OGG_OPUS":
            from voiced.audio.opus import OggOpusEncoder  # the optional `opus` extra

            self._opus = OggOpusEncoder(settings.sample_rate)

    def requests(self, pcm: bytes) -> list[stt.StreamingRecognitionRequest]:
        """Messages for 16-bit mono PCM at settings.sample_rate (Opus: none while it holds < 20 ms)."""
        if self._opus is None:
            return [audio_request(pcm)]
        audio = self._opus.encode(pcm)
        return [audio_request(audio)] if audio else []

    def finish(self) -> list[stt.StreamingRecognitionRequest]:
        """Messages that end the audio (the end of the Ogg stream), before the half-close."""
        audio = self._opus.flush() if self._opus is not None else b""
        return [audio_request(audio)] if audio else []


class RecognitionSession:
    """One StreamingRecognize call. `send`/`finish`/`cancel` from one thread, `events` from another."""

    def __init__(self, stub: stt_grpc.SttServiceStub, settings: RecognitionSettings, metadata: list[tuple[str, str]]):
        self._encoder = AudioEncoder(settings)  # LINEAR16_PCM as is, or this session's Ogg Opus stream
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._outbox.put(config_request(settings))
        self._lock = threading.Lock()
        self._finished = False
        self._cancelled = False
        # called (in gRPC's sending thread) once the half-close is reached: every message sent
        self.on_delivered: Callable[[], None] | None = None
        self._call = stub.StreamingRecognize(self._requests(), metadata=metadata, timeout=settings.timeouts.session_s)
        # when the call ends first (server error, deadline, cancel), gRPC's sending thread
        # may be waiting on the outbox: wake it so it can end too
        self._call.add_done_callback(lambda _call: self._outbox.put(_END))

    def _requests(self) -> Iterator:
        # gRPC takes the next message only once the previous one was sent (its flow control
        # waits for the server to read): reaching the end means the server has it all
        while (item := self._outbox.get()) is not _END:
            yield item
        if self._finished and not self._call.done() and self.on_delivered is not None:
            self.on_delivered()

    def send(self, audio: bytes) -> None:
        """Queue audio; never blocks. Audio after a cancel or after the call has ended is dropped
        (another thread may end it at any time; an error arrives as an event)."""
        with self._lock:
            if self._finished:
                raise RuntimeError("send() after finish()")
            if not (self._cancelled or self._call.done()):
                for request in self._encoder.requests(audio):
                    self._outbox.put(request)

    def finish(self) -> None:
        """Half-close: no more audio; the server finalizes what it has and ends the call."""
        with self._lock:
            if not self._finished:
                self._finished = True
                for request in self._encoder.finish():
                    self._outbox.put(request)
                self._outbox.put(_END)

    def cancel(self) -> None:
        """Abort the call; `events()` then ends without reporting an error."""
        with self._lock:
            self._cancelled = True
        self._call.cancel()

    def events(self) -> Iterator[RecognitionEvent]:
        """Results as they arrive; a failed call ends with one SessionError. Iterate once."""
        try:
            for response in self._call:
                yield from response_events(response)
        except grpc.RpcError as error:
            if self._cancelled:
                return
            code = error.code() if hasattr(error, "code") else None
            details = error.details() if hasattr(error, "details") else str(error)
            yield SessionError(code.name if code is not None else "UNKNOWN", details or "")


class SpeechKitClient:
    """Sessions against one SpeechKit v2 endpoint over one shared channel."""

    def __init__(self, settings: RecognitionSettings, target: str, metadata_provider: MetadataProvider | None = None):
        self.settings = settings
        self.target = target
        self._metadata_provider = metadata_provider
        self._channel = open_channel(settings, target)
        self._stub = stt_grpc.SttServiceStub(self._channel)
        self._watched_at = float("-inf")
        # connection watches in progress (other threads' sessions): a channel is closed only
        # when none is left, else grpcio's poller raises in its thread on the closed channel
        self._watching = threading.Condition()
        self._watchers = 0

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether the channel is (or gets) connected within `timeout_s`, False as soon as a
        connection attempt fails (refused, TLS handshake), so callers fail fast.

        A channel whose last attempt failed waits out gRPC's reconnect backoff before trying
        again; it is replaced by a fresh one here, so every call really tries to connect."""
        first, last = self._attempt_connection(timeout_s)
        if first is grpc.ChannelConnectivity.TRANSIENT_FAILURE:  # stale: from an earlier attempt
            self.close()
            self._channel = open_channel(self.settings, self.target)
            self._stub = stt_grpc.SttServiceStub(self._channel)
            first, last = self._attempt_connection(timeout_s)
        return last is grpc.ChannelConnectivity.READY

    def _attempt_connection(self, timeout_s: float) -> tuple:
        """(first, last) connectivity seen until READY, a failure or the timeout."""
        settled = threading.Event()
        seen: list[grpc.ChannelConnectivity] = []

        def watch(connectivity: grpc.ChannelConnectivity) -> None:
            seen.append(connectivity)
            if connectivity in (
                grpc.ChannelConnectivity.READY,
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                grpc.ChannelConnectivity.SHUTDOWN,
            ):
                settled.set()

        # the channel watched, held here: another thread may replace self._channel meanwhile,
        # and a callback left subscribed keeps grpcio polling a channel that gets closed
        with self._watching:
            channel = self._channel
            self._watchers += 1
        channel.subscribe(watch, try_to_connect=True)
        try:
            settled.wait(timeout_s)
        finally:
            channel.unsubscribe(watch)
            with self._watching:
                self._watched_at = time.monotonic()
                self._watchers -= 1
                self._watching.notify_all()
        return (seen[0] if seen else None), (seen[-1] if settled.is_set() else None)

    def session(self) -> RecognitionSession:
        """Start a call now; asked per session so a refreshed credential is used.

        Raises CredentialError when the metadata provider cannot give a credential."""
        pairs = self._metadata_provider() if self._metadata_provider is not None else []
        # grpcio rejects upper-case metadata keys
        metadata = [(key.lower(), value) for key, value in pairs]
        return RecognitionSession(self._stub, self.settings, metadata)

    def close(self) -> None:
        # grpcio's connectivity poller runs up to 0.2 s past an unsubscribe and raises in its
        # thread if the channel closes under it: wait for the watches to end, then let it notice
        with self._watching:
            self._watching.wait_for(lambda: self._watchers == 0, timeout=self.settings.timeouts.connect_s + 1)
            linger = self._watched_at + _POLLER_LINGER_S - time.monotonic()
        time.sleep(max(0.0, linger))
        self._channel.close()

    def __enter__(self) -> SpeechKitClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
