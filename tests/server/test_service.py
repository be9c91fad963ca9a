"""`voiced serve` over real gRPC on loopback: statuses, limits, auth, concurrency, robustness.

Requests are built from voiced's generated stubs directly (not the client), so what is
tested is the wire behaviour any stock client sees."""

from __future__ import annotations

import itertools
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import LIGHTS_GRAMMAR
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.app import start_server
from voiced.server.config import AuthSettings, GrammarModel, ServerLimits, ServerSettings
from voiced.testing import silence

RATE = 16000


def config_request(**spec) -> stt.StreamingRecognitionRequest:
    fields = {"language_code": "en-US", "audio_encoding": "LINEAR16_PCM", "sample_rate_hertz": RATE} | spec
    return stt.StreamingRecognitionRequest(config=stt.RecognitionConfig(specification=stt.RecognitionSpec(**fields)))


def audio_requests(pcm: bytes, chunk: int = 3200):
    return [stt.StreamingRecognitionRequest(audio_content=pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]


def call(target: str, requests, metadata=None, timeout: float = 60):
    """(responses, None) or (responses so far, RpcError)."""
    with grpc.insecure_channel(target) as channel:
        responses = []
        try:
            for response in stt_grpc.SttServiceStub(channel).StreamingRecognize(
                iter(requests), metadata=metadata, timeout=timeout
            ):
                responses.append(response)
        except grpc.RpcError as error:
            return responses, error
        return responses, None


def finals(responses) -> list[str]:
    return [c.alternatives[0].text for r in responses for c in r.chunks if c.final]


def rejected(target, requests, metadata=None) -> grpc.RpcError:
    _, error = call(target, requests, metadata)
    assert error is not None, "the call succeeded"
    return error


@pytest.fixture(scope="module")
def limited_server():
    settings = ServerSettings(
        limits=ServerLimits(max_gap_s=1.0, max_audio_s=2.0, max_bytes=120_000, max_streams=2),
        models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)},
    )
    server = start_server(settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_server():
    server = start_server(ServerSettings(auth=AuthSettings(api_keys=("key-1", "key-2"), bearer_tokens=("tok",))))
    yield server
    server.stop()


def test_audio_before_the_config_is_invalid_argument(local_server):
    error = rejected(local_server.target, audio_requests(silence(0.2, RATE)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "first message must be the config" in error.details()


def test_a_second_config_mid_stream_is_invalid_argument(local_server):
    error = rejected(local_server.target, [config_request(), *audio_requests(silence(0.2, RATE)), config_request()])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "only the first message" in error.details()


@pytest.mark.parametrize(
    ("spec", "mentions"),
    [
        ({"language_code": "tr-TR"}, "installed: en-US"),
        ({"model": "no-such"}, "available: general"),
        ({"audio_encoding": "MP3"}, "supported: LINEAR16_PCM"),
        ({"sample_rate_hertz": 44100}, "8000, 16000, 48000"),
        ({"audio_channel_count": 2}, "mono"),
    ],
)
def test_bad_specs_are_invalid_argument_with_useful_details(local_server, spec, mentions):
    error = rejected(local_server.target, [config_request(**spec)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and mentions in error.details()


def test_two_utterances_in_one_stream_give_two_finals_with_the_exact_grammar_phrases(local_server, speech_pcm):
    pcm = (
        speech_pcm("turn on the kitchen lights", "flite:slt")
        + silence(1.0, RATE)
        + speech_pcm("open the garage door", "flite:awb")
    )
    responses, error = call(local_server.target, [config_request(model="lights"), *audio_requests(pcm)])
    assert error is None
    assert finals(responses) == ["turn on the kitchen lights", "open the garage door"]
    assert all(c.end_of_utterance for r in responses for c in r.chunks if c.final)


def test_single_utterance_stops_after_the_first_end_of_utterance(local_server, speech_pcm):
    pcm = (
        speech_pcm("turn on the kitchen lights", "flite:slt")
        + silence(1.0, RATE)
        + speech_pcm("open the garage door", "flite:awb")
    )
    responses, error = call(
        local_server.target, [config_request(model="lights", single_utterance=True), *audio_requests(pcm)]
    )
    assert error is None and finals(responses) == ["turn on the kitchen lights"]


def test_half_close_mid_speech_still_gives_the_final(local_server, speech_pcm):
    pcm = speech_pcm("turn off the bedroom lights", "flite:slt", pad_s=0.3)
    cut = pcm[: len(pcm) - int(0.3 * RATE) * 2]  # no trailing silence: only the half-close ends it
    responses, error = call(local_server.target, [config_request(model="lights"), *audio_requests(cut)])
    assert error is None and finals(responses) == ["turn off the bedroom lights"]


def test_partials_arrive_before_the_final_and_never_repeat(local_server, speech_pcm):
    pcm = speech_pcm("set a timer for five minutes", "flite:slt")
    responses, _ = call(local_server.target, [config_request(partial_results=True), *audio_requests(pcm)])
    kinds = [(c.final, c.alternatives[0].text) for r in responses for c in r.chunks]
    partials = [text for final, text in kinds if not final]
    assert partials and not kinds[0][0] and kinds[-1][0]
    assert all(a != b for a, b in itertools.pairwise(partials))


@pytest.mark.parametrize(
    ("raw", "expected"), [(False, "set a timer for 5 minutes"), (True, "set a timer for five minutes")]
)
def test_raw_results_choose_words_or_digits(local_server, speech_pcm, raw, expected):
    pcm = speech_pcm("set a timer for five minutes", "flite:slt")
    responses, _ = call(local_server.target, [config_request(model="lights", raw_results=raw), *audio_requests(pcm)])
    assert finals(responses) == [expected]


def test_words_carry_times_within_the_stream(local_server, speech_pcm):
    pcm = silence(2.0, RATE) + speech_pcm("turn on the kitchen lights", "flite:slt")
    responses, _ = call(local_server.target, [config_request(model="lights"), *audio_requests(pcm)])
    (chunk,) = [c for r in responses for c in r.chunks if c.final]
    words = chunk.alternatives[0].words
    assert [w.word for w in words] == ["turn", "on", "the", "kitchen", "lights"]
    starts = [w.start_time.ToNanoseconds() / 1e9 for w in words]
    assert 2.0 <= starts[0] < starts[-1] < len(pcm) / 2 / RATE


def test_no_message_for_longer_than_the_gap_limit_is_deadline_exceeded(limited_server):
    def slow():
        yield config_request()
        yield from audio_requests(silence(0.1, RATE))
        time.sleep(1.6)
        yield from audio_requests(silence(0.1, RATE))

    error = rejected(limited_server.target, slow())
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "1 s" in error.details()


def test_more_audio_than_the_limit_is_resource_exhausted(limited_server):
    error = rejected(limited_server.target, [config_request(), *audio_requests(silence(2.5, RATE))])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "audio limit" in error.details()


def test_more_data_than_the_limit_is_resource_exhausted(limited_server):
    # at 48 kHz, 1.5 s is within the 2 s audio limit but over the 120 kB data limit
    error = rejected(
        limited_server.target,
        [config_request(sample_rate_hertz=48000), *audio_requests(silence(1.5, 48000), chunk=9600)],
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "data limit" in error.details()


@pytest.fixture(scope="module")
def capped_server():
    """Two streams at most; the default 5 s gap limit, so a loaded machine cannot end the held
    streams of the test below (limited_server's 1 s can)."""
    server = start_server(ServerSettings(limits=ServerLimits(max_streams=2)))
    yield server
    server.stop()


def test_streams_beyond_the_cap_are_resource_exhausted_and_the_cap_frees_up(capped_server, speech_pcm):
    release = threading.Event()
    speech = audio_requests(speech_pcm("turn on the kitchen lights", "flite:slt"))

    def held():
        yield config_request(partial_results=True)
        yield from speech  # answered with partials: proof that the stream holds a slot
        while not release.wait(0.3):
            yield from audio_requests(silence(0.02, RATE))

    def read(held_call, answered: threading.Event, errors: list) -> None:
        try:
            for _ in held_call:
                answered.set()
        except grpc.RpcError as error:
            errors.append(error)

    channels = [grpc.insecure_channel(capped_server.target) for _ in range(2)]
    calls = [stt_grpc.SttServiceStub(c).StreamingRecognize(held(), timeout=120) for c in channels]
    answered, errors = [threading.Event(), threading.Event()], []
    readers = [threading.Thread(target=read, args=(c, a, errors)) for c, a in zip(calls, answered)]
    for reader in readers:
        reader.start()
    try:
        # both are being served: waited for (a busy machine starts serving them later)
        assert all(event.wait(60) for event in answered) and not errors, errors
        error = rejected(capped_server.target, [config_request()])
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 2" in error.details()
    finally:
        release.set()
        for reader in readers:
            reader.join(60)
        for channel in channels:
            channel.close()
    assert not errors, errors
    assert call(capped_server.target, [config_request(), *audio_requests(silence(0.2, RATE))])[1] is None


@pytest.mark.parametrize(
    "metadata",
    [None, [("authorization", "Api-Key wrong")], [("authorization", "Bearer key-1")], [("authorization", "key-1")]],
)
def test_auth_refuses_missing_and_wrong_credentials(auth_server, metadata):
    error = rejected(auth_server.target, [config_request()], metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "key-1" not in error.details() and "Api-Key <key>" in error.details()


@pytest.mark.parametrize("credential", ["Api-Key key-1", "Api-Key key-2", "Bearer tok"])
def test_auth_accepts_each_configured_credential(auth_server, credential, speech_pcm):
    pcm = speech_pcm("what time is it", "flite:slt")
    responses, error = call(
        auth_server.target, [config_request(), *audio_requests(pcm)], [("authorization", credential)]
    )
    assert error is None and "time" in finals(responses)[0]


def test_the_server_survives_clients_that_vanish_mid_stream(local_server, speech_pcm):
    pcm = speech_pcm("turn on the kitchen lights", "flite:slt")
    for _ in range(3):
        channel = grpc.insecure_channel(local_server.target)
        responses = stt_grpc.SttServiceStub(channel).StreamingRecognize(
            iter([config_request(partial_results=True), *audio_requests(pcm[: len(pcm) // 2])]), timeout=30
        )
        next(responses)  # a partial: the server is mid-utterance
        channel.close()  # gone without a half-close
    responses, error = call(local_server.target, [config_request(model="lights"), *audio_requests(pcm)])
    assert error is None and finals(responses) == ["turn on the kitchen lights"]


def test_random_bytes_as_audio_end_normally(local_server):
    noise = bytes((i * 7919 + 13) % 256 for i in range(RATE * 2))  # odd bytes count included below
    _responses, error = call(local_server.target, [config_request(), *audio_requests(noise + b"\x01", chunk=777)])
    assert error is None


def test_health_and_reflection_answer_standard_tools(local_server):
    with grpc.insecure_channel(local_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="yandex.cloud.ai.stt.v2.SttService"), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answer = next(
            reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        )
        names = {s.name for s in answer.list_services_response.service}
        assert "yandex.cloud.ai.stt.v2.SttService" in names


# --- hardening: random request streams, and many streams at once -----------------------------

ANSWERS_FOR_BAD_INPUT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}

specs = st.fixed_dictionaries(
    {},
    optional={
        "language_code": st.sampled_from(["en-US", "ru-RU", "", "xx", "en-US" * 20]),
        "model": st.sampled_from(["general", "lights", "", "general:rc", "nope"]),
        "audio_encoding": st.integers(0, 5),
        "sample_rate_hertz": st.sampled_from([0, 8000, 16000, 48000, -1, 2**40]),
        "audio_channel_count": st.integers(-2, 3),
        "partial_results": st.booleans(),
        "single_utterance": st.booleans(),
        "raw_results": st.booleans(),
        "profanity_filter": st.booleans(),
    },
)
messages = st.one_of(
    specs.map(
        lambda spec: stt.StreamingRecognitionRequest(
            config=stt.RecognitionConfig(specification=stt.RecognitionSpec(**spec))
        )
    ),
    st.binary(max_size=4000).map(lambda data: stt.StreamingRecognitionRequest(audio_content=data)),
    st.just(stt.StreamingRecognitionRequest()),  # neither config nor audio
)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(messages, max_size=30))
def test_random_request_streams_get_a_proper_answer(limited_server, stream):
    _, error = call(limited_server.target, stream, timeout=30)
    assert error is None or error.code() in ANSWERS_FOR_BAD_INPUT, (error.code(), error.details())


def test_thousands_of_tiny_chunks_and_a_huge_message(limited_server, local_server):
    tiny = [stt.StreamingRecognitionRequest(audio_content=b"\x00\x01") for _ in range(5000)]
    assert call(local_server.target, [config_request(), *tiny])[1] is None
    huge = stt.StreamingRecognitionRequest(audio_content=bytes(5 * 1024 * 1024))  # over max_message_bytes
    error = rejected(limited_server.target, [config_request(), huge])
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_many_concurrent_streams_each_get_an_answer_and_memory_settles(speech_pcm):
    server = start_server(
        ServerSettings(limits=ServerLimits(max_streams=6), models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)})
    )
    pcm = speech_pcm("turn on the kitchen lights", "flite:slt")

    def round_of(streams: int) -> list:
        outcomes, threads = [], []

        def one():
            responses, error = call(server.target, [config_request(model="lights"), *audio_requests(pcm)])
            outcomes.append(error.code() if error else finals(responses))

        for _ in range(streams):
            threads.append(threading.Thread(target=one))
            threads[-1].start()
        for thread in threads:
            thread.join()
        return outcomes

    try:
        round_of(12)  # warm up: decoders, gRPC threads and arenas reach their working size
        settled = rss_mb()
        for _ in range(3):
            outcomes = round_of(12)
            assert all(
                o == ["turn on the kitchen lights"] or o == grpc.StatusCode.RESOURCE_EXHAUSTED for o in outcomes
            ), outcomes
            assert outcomes.count(["turn on the kitchen lights"]) >= 6
        assert rss_mb() - settled < 40, f"RSS grew from {settled:.0f} MB to {rss_mb():.0f} MB"
    finally:
        server.stop()
