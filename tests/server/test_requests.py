"""A call's request stream on its own, with the clock passed in: what counts as a gap.

The reader thread is real; the tests wait for it through the stream's own `next()` and for
the raw iterator being asked for more. Only the last lets real time pass: the gap limit is
what it tests (0.2 s; a starved process only makes it later)."""

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


def stalling(asked_again: threading.Event, release: threading.Event):
    """A client that sends one message, then nothing until `release` (then one more)."""
    yield AUDIO
    asked_again.set()  # the reader now waits for the client
    release.wait()
    yield AUDIO


def test_time_spent_decoding_is_no_gap():
    clock = Clock()
    asked_again, release = threading.Event(), threading.Event()
    stream = RequestStream(stalling(asked_again, release), LIMITS, clock)
    assert stream.next().audio_content
    assert asked_again.wait(30)
    clock.now += 10 * LIMITS.max_gap_s  # the handler decodes, the client says nothing
    stream.check()
    release.set()
    assert stream.next().audio_content  # the handler never waited for it: no gap


def test_a_client_silent_past_the_limit_while_the_handler_waits_is_deadline_exceeded():
    asked_again, release = threading.Event(), threading.Event()
    stream = RequestStream(stalling(asked_again, release), ServerLimits(max_gap_s=0.2))
    assert stream.next().audio_content
    with pytest.raises(CallFailed) as failure:
        stream.next()
    release.set()
    assert failure.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "at most 0.2 s allowed" in failure.value.details
