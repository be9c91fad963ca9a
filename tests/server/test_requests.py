"""A call's request stream on its own, with the clock passed in: what counts as a gap.

The reader thread is real; the test waits for it through the stream's own `next()` and for
the raw iterator being asked for more, never for wall-clock time."""

from __future__ import annotations

import threading

import grpc
import pytest

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.server.config import ServerLimits
from voiced.server.requests import CLOSED, CallFailed, RequestStream

LIMITS = ServerLimits(max_gap_s=2.0)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def raw(request: stt.StreamingRecognitionRequest) -> bytes:
    return request.SerializeToString()


AUDIO = raw(stt.StreamingRecognitionRequest(audio_content=b"\0\0" * 1600))


def test_decoding_after_the_client_half_closed_is_no_gap():
    clock = Clock()
    stream = RequestStream(iter([AUDIO]), LIMITS, clock)
    assert stream.next().audio_content
    assert stream.next() is CLOSED
    clock.now += 10 * LIMITS.max_gap_s  # the final takes long to decode on a busy machine
    stream.check()  # the client did nothing wrong


def test_a_client_silent_past_the_limit_is_deadline_exceeded():
    clock = Clock()
    asked_again, release = threading.Event(), threading.Event()

    def requests():
        yield AUDIO
        asked_again.set()  # the reader now waits for the client
        release.wait()

    stream = RequestStream(requests(), LIMITS, clock)
    assert stream.next().audio_content
    assert asked_again.wait(30)
    clock.now += LIMITS.max_gap_s / 2
    stream.check()  # within the limit
    clock.now += LIMITS.max_gap_s
    with pytest.raises(CallFailed) as failure:
        stream.check()
    release.set()
    assert failure.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no message for 3.0 s, at most 2 s allowed" in failure.value.details
