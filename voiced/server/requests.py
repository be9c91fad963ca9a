"""One call's request stream, read by a thread of its own a bounded amount ahead of decoding.

The thread lets the handler tell "the client sent nothing for 5 s" (DEADLINE_EXCEEDED, as the
service does) from "decoding takes a while". A gap is counted only while the reader waits for
the client *and* the handler waits for a request: time spent decoding never counts. pocketsphinx
keeps the GIL while it decodes, so a busy server's reader may get to a message that came in
time only late: its own wait is no measure. The handler's wait is, unless it woke up late
itself (the process was starved): then the reader gets another turn before a gap is declared.

The thread reads raw bytes (the method is registered without a deserializer) and parses them
itself, so a malformed message is the client's INVALID_ARGUMENT and never grpcio's own INTERNAL
abort (after which grpcio sent a second status when the handler ended, and that call kept the
server from ever shutting down).

Backpressure: the thread holds at most READ_AHEAD_BYTES (or one message) that the handler
has not taken yet; past that it stops reading, so gRPC's flow control stops the client.
The session's data and LINEAR16 audio limits are counted as messages arrive, so a flood
fails at once, not when decoding reaches it.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator

import grpc
from google.protobuf.message import DecodeError

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.server.config import ServerLimits

STARVED_S = 0.1  # a wait that ended this much later than asked: the process did not get the CPU
READ_AHEAD_BYTES = 256 * 1024  # received but not yet taken by the handler (besides one message)
MAX_DETAILS = 1000  # characters of a status' details: gRPC carries them in a header (8 KB cap)

CLOSED = object()  # the client half-closed


class CallFailed(Exception):
    """Ends the call with `code`; `details` are cut to MAX_DETAILS (they echo client input)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        if len(details) > MAX_DETAILS:
            details = details[: MAX_DETAILS - 20] + f"... ({len(details)} chars)"
        super().__init__(details)
        self.code = code
        self.details = details


class CallCancelled(Exception):
    """The client cancelled, or the call ended otherwise: stop working on it, answer nothing."""


def parse_request(raw: bytes) -> stt.StreamingRecognitionRequest:
    try:
        return stt.StreamingRecognitionRequest.FromString(raw)
    except DecodeError as error:
        # protobuf's message names the type and the problem ("String field had bad UTF-8"),
        # never the bytes received
        raise CallFailed(
            grpc.StatusCode.INVALID_ARGUMENT, f"a message is not a valid StreamingRecognitionRequest: {error}"
        ) from None


class RequestStream:
    """Requests of one call in arrival order. `next()` from the handler; `cancel()` from any
    thread (gRPC's termination callback)."""

    def __init__(
        self, raw_requests: Iterator[bytes], limits: ServerLimits, clock: Callable[[], float] = time.monotonic
    ):
        self._limits = limits
        self._clock = clock
        self._ready: collections.deque = collections.deque()
        self._ready_bytes = 0
        self._state = threading.Condition()
        self._waiting_since: float | None = None  # while the reader waits for the client
        self._ended = False  # the client half-closed, or the stream broke
        self._cancelled = False
        self._failure: CallFailed | None = None
        self._done = False  # the handler is finished with the call
        self.received_bytes = 0  # every message, the config included (the service's data limit)
        self._audio_bytes = 0
        self._audio_bytes_per_s: float | None = None  # LINEAR16's, once the handler knows the spec
        threading.Thread(target=self._read, args=(raw_requests,), name="stt-requests", daemon=True).start()

    def _read(self, raw_requests: Iterator[bytes]) -> None:
        while True:
            with self._state:
                self._state.wait_for(
                    lambda: (
                        self._done
                        or self._cancelled
                        or self._failure is not None
                        or not self._ready
                        or self._ready_bytes < READ_AHEAD_BYTES
                    )
                )
                if self._done or self._cancelled or self._failure is not None:
                    return
                self._waiting_since = self._clock()
                self._state.notify_all()  # a handler that waits for a request counts the gap from now
            try:
                raw = next(raw_requests)
            except StopIteration:
                self._end()
                return
            except Exception:  # the call was cancelled or broken (an RpcError)
                self.cancel()
                return
            with self._state:
                self._waiting_since = None
                try:
                    self._accept(raw)
                except CallFailed as failure:
                    self._failure = failure
                self._state.notify_all()

    def _accept(self, raw: bytes) -> None:
        self.received_bytes += len(raw)
        if self.received_bytes > self._limits.max_bytes:
            raise CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, data_limit_details(self._limits))
        request = parse_request(raw)
        self._audio_bytes += len(request.audio_content)
        self._check_audio()
        self._ready.append((request, len(raw)))
        self._ready_bytes += len(raw)

    def _check_audio(self) -> None:
        if self._audio_bytes_per_s and self._audio_bytes / self._audio_bytes_per_s > self._limits.max_audio_s:
            raise audio_limit_failure(self._limits)

    def _gap_failure(self, waited: float) -> CallFailed:
        return CallFailed(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"no message for {waited:.1f} s, at most {self._limits.max_gap_s:g} s allowed: the "
            "session is closed; send audio at least every few seconds or start a new session",
        )

    def _end(self) -> None:
        with self._state:
            self._ended = True
            self._state.notify_all()

    def cancel(self) -> None:
        with self._state:
            self._cancelled = True
            self._state.notify_all()

    def close(self) -> None:
        """The handler is done: the reader stops (a call that ended cannot be read on)."""
        with self._state:
            self._done = True
            self._state.notify_all()

    def count_audio_as(self, bytes_per_s: float | None) -> None:
        """LINEAR16's byte rate: its audio limit is then checked as messages arrive (Ogg Opus is
        counted by the decoder, in decoded seconds)."""
        with self._state:
            self._audio_bytes_per_s = bytes_per_s
            try:
                self._check_audio()
            except CallFailed as failure:
                self._failure = failure

    def check(self) -> None:
        """Raise what ends the call now (between two steps of decoding): a limit, a cancel."""
        with self._state:
            self._check_locked()

    def _check_locked(self) -> None:
        if self._cancelled:
            raise CallCancelled()
        if self._failure is not None:
            raise self._failure

    def next(self):
        """The next request, or CLOSED after a half-close; raises CallFailed or CallCancelled."""
        idle_since: float | None = None  # this handler has waited for a request since
        starved = False  # its last wait ended late: the reader may not have had its turn yet
        with self._state:
            while True:
                self._check_locked()
                if self._ready:
                    request, size = self._ready.popleft()
                    self._ready_bytes -= size
                    self._state.notify_all()
                    return request
                if self._ended:
                    return CLOSED
                now = self._clock()
                idle_since = now if idle_since is None else idle_since
                if self._waiting_since is None:  # the reader is not waiting for the client
                    self._state.wait()
                    continue
                gap = now - max(self._waiting_since, idle_since)
                if gap > self._limits.max_gap_s and not starved:
                    raise self._gap_failure(gap)
                until = now + (STARVED_S if starved else self._limits.max_gap_s - gap + 0.01)
                self._state.wait(until - now)
                starved = self._clock() - until > STARVED_S


def audio_limit_failure(limits: ServerLimits) -> CallFailed:
    return CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, audio_limit_details(limits))


# What the limits say to a client, over either API (the v2 API's status details, Wyoming's error text)


def audio_limit_details(limits: ServerLimits) -> str:
    return f"session audio limit reached ({limits.max_audio_s:g} s): start a new session"


def data_limit_details(limits: ServerLimits) -> str:
    return f"session data limit reached ({limits.max_bytes} bytes): start a new session"


def too_many_streams(limits: ServerLimits) -> str:
    return f"too many concurrent streams (at most {limits.max_streams})"
