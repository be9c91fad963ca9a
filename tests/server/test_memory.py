"""Memory per stream: the open LM shared by its decoders, and the decoder memory budget
(real `voiced serve` processes, real speech, memory read from /proc)."""

from __future__ import annotations

import contextlib
import threading

import grpc
import pytest

from tests.conftest import LIGHTS_GRAMMAR
from tests.server.test_service import RATE, audio_requests, call, config_request, finals
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.config import LanguageModel
from voiced.server.lmshare import SharedLanguageModel
from voiced.server.pocketsphinx import model_paths
from voiced.testing import ServeProcess, read_pcm, silence


@contextlib.contextmanager
def held_calls(target: str, count: int, pcm: bytes, one_connection: bool = False, **spec):
    """`count` calls (open LM, or as `spec` says) that each got their final for `pcm` (so each
    holds a decoder), kept open with a little silence until the block ends. Yields the outcome
    of each: its final's text, or the status code it was refused with. Each call on a
    connection of its own, as from separate devices, unless `one_connection`."""
    release = threading.Event()
    channels, calls, outcomes = [], [], []

    def requests():
        yield config_request(**spec)
        yield from audio_requests(pcm + silence(1.0, RATE))
        while not release.wait(0.3):
            yield from audio_requests(silence(0.02, RATE))

    try:
        for index in range(count):
            if index == 0 or not one_connection:
                # a connection of its own (grpcio shares one between channels to the same target)
                channels.append(grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]))
            responses = stt_grpc.SttServiceStub(channels[-1]).StreamingRecognize(requests(), timeout=120)
            calls.append(responses)
            try:
                outcomes.append(next(responses).chunks[0].alternatives[0].text)
            except grpc.RpcError as error:
                outcomes.append(error.code())
        yield outcomes
    finally:
        release.set()
        for responses in calls:
            responses.cancel()
        for channel in channels:
            channel.close()


def test_decoders_of_the_open_lm_give_what_a_decoder_of_its_own_gives(tmp_path, speech):
    from pocketsphinx import Decoder

    acoustic, dictionary, lm = model_paths(LanguageModel())
    shared = SharedLanguageModel(acoustic, dictionary, lm, tmp_path, "en-US")
    for text, voice in [
        ("what is the weather like tomorrow", "flite:awb"),
        ("play some music", "flite:rms"),
        ("set a timer for twenty minutes", "espeak:en-us"),
    ]:
        pcm, _ = read_pcm(speech(text, voice))
        heard = []
        own = Decoder(hmm=str(acoustic), dict=str(dictionary), lm=str(lm), loglevel="FATAL")
        for decoder in (own, shared.decoder(), shared.decoder()):  # fresh ones: no adaptation carried over
            decoder.start_utt()
            decoder.process_raw(pcm, False, True)
            decoder.end_utt()
            heard.append(
                (
                    decoder.hyp().hypstr,
                    decoder.hyp().best_score,
                    [(s.word, s.start_frame, s.end_frame, s.ascore) for s in decoder.seg()],
                )
            )
        assert heard[0] == heard[1] == heard[2]
        assert heard[0][0]  # recognized something, so the comparison compares words


def test_each_open_lm_stream_costs_far_less_than_a_whole_decoder(tmp_path, speech_pcm):
    server = ServeProcess(tmp_path, {"idle_decoders": 0, "limits": {"max_streams": 8}})
    pcm = speech_pcm("what time is it")
    try:
        with held_calls(server.target, 1, pcm) as outcomes:
            assert outcomes == ["what time is it"]
            one = server.pss_mb()
        with held_calls(server.target, 5, pcm) as outcomes:
            assert outcomes == ["what time is it"] * 5
            five = server.pss_mb()
    finally:
        server.stop()
    # a decoder with its own LM and the whole dictionary holds ~91 MB
    per_stream = (five - one) / 4
    assert per_stream < 65, f"{per_stream:.0f} MB per open-LM stream"


def test_each_stream_of_a_rejecting_grammar_costs_a_few_mb(tmp_path, speech_pcm):
    # its phone loop used to load the whole default dictionary (~28 MB) for no word at all
    grammar = {"language": "en-US", "jsgf": LIGHTS_GRAMMAR, "rejection_margin": 0.75}
    server = ServeProcess(tmp_path, {"idle_decoders": 0, "models": {"lights": grammar}})
    pcm = speech_pcm("turn on the kitchen lights")
    try:
        with held_calls(server.target, 1, pcm, model="lights") as outcomes:
            assert outcomes == ["turn on the kitchen lights"]
            one = server.pss_mb()
        with held_calls(server.target, 7, pcm, model="lights") as outcomes:
            assert outcomes == ["turn on the kitchen lights"] * 7
            seven = server.pss_mb()
    finally:
        server.stop()
    per_stream = (seven - one) / 6
    assert per_stream < 15, f"{per_stream:.0f} MB per stream of a rejecting grammar"


def test_past_the_memory_budget_calls_are_refused_clearly_and_served_again_once_others_end(tmp_path, speech_pcm):
    server = ServeProcess(tmp_path, {"idle_decoders": 0, "memory_budget_mb": 200, "limits": {"max_streams": 8}})
    pcm = speech_pcm("what time is it")
    try:
        with held_calls(server.target, 8, pcm) as outcomes:
            served = outcomes.count("what time is it")
            assert 1 <= served < 8 and outcomes[served:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (8 - served)
            _, error = call(server.target, [config_request(), *audio_requests(pcm)])
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "memory budget" in error.details()
            assert server.pss_mb() < 200 + 150  # the budget, and the interpreter, gRPC and numpy beside it
        responses, error = call(server.target, [config_request(), *audio_requests(pcm)])
        assert error is None and finals(responses) == ["what time is it"]
    finally:
        server.stop()


@pytest.mark.parametrize("budget", [0, -5])
def test_a_budget_must_be_positive(tmp_path, budget):
    from voiced.server.config import ServerSettings

    with pytest.raises(ValueError, match="memory_budget_mb"):
        ServerSettings(memory_budget_mb=budget)
