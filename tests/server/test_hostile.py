"""`voiced serve` against hostile clients: bytes that are no request, huge strings, calls with
no message, floods, cancels, noise, and SIGTERM after all that (real processes and real gRPC
on loopback; raw bytes are sent on a channel without a serializer)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from tests.conftest import LIGHTS_GRAMMAR
from tests.server.test_service import RATE, audio_requests, call, config_request, finals, rejected
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.server.app import start_server
from voiced.server.config import ServerLimits, ServerSettings
from voiced.server.requests import MAX_DETAILS
from voiced.server.service import SERVICE_NAME
from voiced.testing import ServeProcess, noise, silence, status_mb

METHOD = f"/{SERVICE_NAME}/StreamingRecognize"
FOUR_MB_OF_AUDIO = 4_000_000  # under the default 4 MiB message cap with the protobuf framing


def raw_call(target: str, messages, timeout: float = 60):
    """(responses, None) or (responses so far, RpcError); `messages` are bytes as sent."""
    with grpc.insecure_channel(target) as channel:
        stream = channel.stream_stream(
            METHOD, request_serializer=None, response_deserializer=stt.StreamingRecognitionResponse.FromString
        )
        responses = []
        try:
            for response in stream(iter(messages), timeout=timeout):
                responses.append(response)
        except grpc.RpcError as error:
            return responses, error
        return responses, None


def raw_config(**spec) -> bytes:
    return config_request(**spec).SerializeToString()


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """`voiced serve` with the lights grammar and default limits."""
    server = ServeProcess(
        tmp_path_factory.mktemp("serve"), {"models": {"lights": {"language": "en-US", "jsgf": LIGHTS_GRAMMAR}}}
    )
    yield server
    server.stop()


def test_sigterm_ends_serve_after_calls_whose_second_message_does_not_decode(tmp_path):
    server = ServeProcess(tmp_path)
    try:
        for _ in range(5):
            _, error = raw_call(server.target, [raw_config(), b"\xff" * 50])
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        # grpcio used to leave such calls unfinished, and the server's stop waited on them forever
        assert server.stop(timeout=60) == 0


@pytest.mark.parametrize("message", [b"\xff" * 50, b"\x0a\x05abc", b"\x12"])
def test_bytes_that_are_no_request_are_invalid_argument(serve, message):
    for messages in ([message], [raw_config(), message]):
        _, error = raw_call(serve.target, messages)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "not a valid StreamingRecognitionRequest" in error.details()


@pytest.mark.parametrize(
    ("spec", "placeholder"), [({"language_code": "en-US"}, b"en-US"), ({"model": "lights"}, b"lights")]
)
def test_invalid_utf8_in_a_string_field_is_invalid_argument(serve, spec, placeholder):
    config = raw_config(**spec)
    _, error = raw_call(serve.target, [config.replace(placeholder, placeholder[:-1] + b"\xff")])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in error.details()


def test_invalid_utf8_in_folder_id_is_invalid_argument(serve):
    request = config_request()
    request.config.folder_id = "abcde"
    _, error = raw_call(serve.target, [request.SerializeToString().replace(b"abcde", b"abc\xc3\x28")])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in error.details()


@pytest.mark.parametrize("field", ["language_code", "model"])
def test_a_huge_string_is_echoed_cut_short(serve, field):
    error = rejected(serve.target, [config_request(**{field: "x" * 200_000})])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "200000 characters" in error.details() and len(error.details()) <= MAX_DETAILS


def test_reflection_streams_held_open_never_take_the_recognition_calls_threads(serve):
    """Reflection needs no credentials, and each open stream holds a server thread: 12 held
    open used to take them all, and every later call waited out its deadline."""
    from concurrent.futures import ThreadPoolExecutor

    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    def open_reflection_stream(channel, done: threading.Event):
        def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            done.wait()  # never half-closes until told

        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(requests(), timeout=60)
        try:
            next(stream)
            return stream, None
        except grpc.RpcError as error:
            return stream, error

    done = threading.Event()
    channels = [grpc.insecure_channel(serve.target) for _ in range(12)]
    try:
        opened = [open_reflection_stream(channel, done) for channel in channels]
        refused = [error for _, error in opened if error is not None]
        assert len(refused) == 10
        assert {error.code() for error in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        # all of the server's streams (max_streams: 8) are still there for recognition
        requests = [config_request(model="lights"), *audio_requests(silence(1.0, RATE))]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: call(serve.target, requests), range(8)))
        assert [error for _, error in results] == [None] * 8
    finally:
        done.set()
        for channel in channels:
            channel.close()
    # the held streams' places are given back when they end
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(serve.target) as channel:
        while (error := open_reflection_stream(channel, done)[1]) is not None:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
            time.sleep(0.1)


def test_a_call_with_no_message_is_invalid_argument(serve):
    error = rejected(serve.target, [])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "config" in error.details()


def test_a_flood_of_4_mb_messages_is_held_back_by_flow_control_and_ends_at_the_data_limit(serve):
    call(serve.target, [config_request(model="lights"), *audio_requests(silence(0.5, RATE))])  # a decoder loaded
    peak_before = status_mb(serve.process.pid, "VmHWM")
    sent = []
    loud = noise(FOUR_MB_OF_AUDIO / 2 / RATE, RATE, "whitenoise", 0.5)  # speech to the VAD: decoded
    big = stt.StreamingRecognitionRequest(audio_content=loud).SerializeToString()

    def flood():
        yield raw_config(model="lights")
        for _ in range(100):
            sent.append(1)
            yield big

    _, error = raw_call(serve.target, flood())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "data limit" in error.details()
    # the server reads a message only when it has room for it (one message ahead of decoding),
    # so the client is held back by flow control (it used to be read as fast as it came, all
    # 100 messages into memory), and the third message, over the 10 MB limit, ends the call
    assert len(sent) < 10, len(sent)
    grown = status_mb(serve.process.pid, "VmHWM") - peak_before
    assert grown < 60, f"peak RSS grew by {grown:.0f} MB"


def test_noise_gives_no_final_and_does_not_end_a_single_utterance(serve, speech_pcm):
    loud = noise(2.0, RATE, "whitenoise", 0.5)
    responses, error = call(serve.target, [config_request(), *audio_requests(loud + silence(1.0, RATE))])
    assert error is None and finals(responses) == []
    command = speech_pcm("turn on the kitchen lights", "flite:slt")
    responses, error = call(
        serve.target,
        [config_request(model="lights", single_utterance=True), *audio_requests(loud + silence(1.0, RATE) + command)],
    )
    assert error is None and finals(responses) == ["turn on the kitchen lights"]


def test_cancelled_calls_free_their_stream_slots_while_their_audio_is_still_undecoded(speech_pcm):
    # noise is one utterance until max_utterance_s: the old server decoded all 125 s of a
    # cancelled call's message before it noticed the client was gone
    server = start_server(
        ServerSettings(limits=ServerLimits(max_streams=2, max_gap_s=30), endpointing={"max_utterance_s": 300})
    )
    heard = speech_pcm("what time is it", "flite:slt") + silence(1.0, RATE)
    flood = stt.StreamingRecognitionRequest(audio_content=noise(FOUR_MB_OF_AUDIO / 2 / RATE, RATE, "whitenoise", 0.5))
    try:
        calls, channels = [], []
        for _ in range(2):
            release = threading.Event()

            def requests(release=release):
                yield config_request()
                yield from audio_requests(heard)
                yield flood
                release.wait(60)

            channels.append(grpc.insecure_channel(server.target))
            calls.append((stt_service_grpc(channels[-1]).StreamingRecognize(requests(), timeout=120), release))
        for responses, _ in calls:
            next(responses)  # the final of the speech: the server is decoding this call
        assert rejected(server.target, [config_request()]).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for responses, release in calls:
            responses.cancel()
            release.set()
        assert wait_for_a_free_slot(server.target, attempts=100), "the cancelled calls still hold their slots"
    finally:
        for channel in channels:
            channel.close()
        server.stop()


def stt_service_grpc(channel):
    from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc

    return stt_service_pb2_grpc.SttServiceStub(channel)


def wait_for_a_free_slot(target: str, attempts: int) -> bool:
    """Whether a new call gets served within `attempts` tries 0.1 s apart (each try is refused
    at once while both slots are held)."""
    for _ in range(attempts):
        _, error = call(target, [config_request(), *audio_requests(silence(0.1, RATE))], timeout=30)
        if error is None:
            return True
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        time.sleep(0.1)
    return False
