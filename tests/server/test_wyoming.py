"""The Wyoming ASR listener of the local server, over loopback with the real `wyoming` client
library: describe, real synthesized speech through the open model, a grammar and the Whisper
commands model, transcript streaming by client version, and every bad input answered."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info, SelectProgram
from wyoming.ping import Ping

from tests.conftest import LIGHTS_GRAMMAR
from tests.server.test_service import audio_requests, call, config_request, finals
from voiced.server.app import start_server
from voiced.server.config import GrammarModel, ServerLimits, ServerSettings, tcp_address
from voiced.server.session import Result
from voiced.server.wyoming_asr import TranscriptText, has_transcript_streaming, installed_language
from voiced.testing import silence
from voiced.testing.wyoming_client import exchange, request_events, transcript

COMMANDS = "config/commands.yaml"


@pytest.fixture(scope="module")
def server():
    """The open model, the lights grammar and the shipped commands on the Whisper engine."""
    running = start_server(
        ServerSettings(
            models={
                "lights": GrammarModel(jsgf=LIGHTS_GRAMMAR),
                "commands": GrammarModel(commands_files=(COMMANDS,), engine="whisper"),
            }
        ).with_wyoming("tcp://127.0.0.1:0")
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def limited():
    """One stream at a time over both APIs, 4 s of audio per stream."""
    running = start_server(
        ServerSettings(limits=ServerLimits(max_streams=1, max_audio_s=4.0, max_gap_s=60.0)).with_wyoming(
            "tcp://127.0.0.1:0"
        )
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("asked", "installed", "meant"),
    [
        ("en-US", ["en-US", "ru-RU"], "en-US"),
        ("en_us", ["en-US"], "en-US"),
        ("en", ["ru-RU", "en-US"], "en-US"),
        ("en", ["en-US", "en-GB"], "en"),
        ("de", ["en-US"], "de"),  # ambiguous or absent: left for the check to refuse
    ],
)
def test_a_language_means_the_one_installed_code_it_can_only_mean(asked, installed, meant):
    assert installed_language(asked, installed) == meant


@pytest.mark.parametrize(
    ("version", "streams"),
    [
        ("1.10.2", True),
        ("1.7.0", True),
        ("2.0", True),
        ("1.6.2", False),
        ("1.5.4", False),
        (None, False),
        ("next", False),
        (170, False),
    ],
)
def test_transcript_streaming_goes_to_clients_of_wyoming_1_7_on(version, streams):
    assert has_transcript_streaming(version) is streams


def test_transcript_chunks_are_the_finals_and_concatenate_to_the_transcript():
    transcript_text = TranscriptText()
    assert transcript_text.add([Result(final=False, text="what"), Result(final=True, text="")]) == []
    assert transcript_text.add([Result(final=True, text="what time is it")]) == ["what time is it"]
    assert transcript_text.add([Result(final=True, text="stop")]) == [" stop"]
    assert transcript_text.text == "what time is it stop"


def types(received: list[Event]) -> list[str]:
    return [event.type for event in received]


def test_describe_lists_the_program_with_every_model_and_its_language(server):
    [answer] = exchange(server.wyoming.uri, [Describe().event()], until=lambda got: True)
    [program] = Info.from_event(answer).asr
    assert program.name == "voiced" and program.installed and program.supports_transcript_streaming
    assert {model.name: model.languages for model in program.models} == {
        "en-US": ["en-US"],
        "lights": ["en-US"],
        "commands": ["en-US"],
    }
    assert all(model.installed and model.attribution.url for model in program.models)


def test_speech_is_transcribed_with_each_final_streamed_as_it_is_decoded(server, speech_pcm):
    pcm = speech_pcm("what time is it") + silence(1.0, 16000) + speech_pcm("what is the weather like tomorrow")
    received = exchange(server.wyoming.uri, request_events(pcm, language="en-US"))
    assert types(received) == [
        "transcript-start",
        "transcript-chunk",
        "transcript-chunk",
        "transcript",
        "transcript-stop",
    ]
    chunks = [event.data["text"] for event in received if event.type == "transcript-chunk"]
    assert chunks == ["what time is it", " what is the weather like tomorrow"]
    assert transcript(received) == "".join(chunks)
    assert received[3].data["language"] == "en-US"


@pytest.mark.parametrize(
    ("name", "rate", "voice", "text", "heard"),
    [
        ("lights", 8000, "flite:kal16", "turn off the bedroom lights", "turn off the bedroom lights"),
        ("lights", 48000, "flite:slt", "set a timer for five minutes", "set a timer for 5 minutes"),
        ("commands", 16000, "flite:slt", "set a timer for fifteen minutes", "set a timer for 15 minutes"),
        ("commands", 48000, "flite:kal16", "what time is it", "what time is it"),
    ],
)
def test_grammars_and_the_whisper_commands_model_by_name_at_each_rate(
    server, speech_pcm, name, rate, voice, text, heard
):
    pcm = speech_pcm(text, voice, rate)
    assert transcript(exchange(server.wyoming.uri, request_events(pcm, rate=rate, name=name))) == heard


def test_the_same_audio_gives_the_same_text_over_wyoming_and_the_v2_api(server, speech_pcm):
    pcm = speech_pcm("turn on the kitchen lights", "flite:awb")
    responses, error = call(server.target, [config_request(model="lights"), *audio_requests(pcm)])
    assert error is None
    assert transcript(exchange(server.wyoming.uri, request_events(pcm, name="lights"))) == finals(responses)[0]


def test_a_bare_language_or_no_request_at_all_is_the_installed_open_model(server, speech_pcm):
    pcm = speech_pcm("what time is it")
    bare = exchange(server.wyoming.uri, request_events(pcm, language="en"))
    assert transcript(bare) == "what time is it" and bare[-2].data["language"] == "en-US"
    no_transcribe = request_events(pcm)[1:]  # transcribe is optional
    assert transcript(exchange(server.wyoming.uri, no_transcribe)) == "what time is it"


def test_a_client_older_than_transcript_streaming_gets_the_transcript_alone(server, speech_pcm, monkeypatch):
    # the library writes its own release into every event header; 1.6.2 predates streaming
    monkeypatch.setattr("wyoming.event._VERSION_NUMBER", "1.6.2")
    received = exchange(
        server.wyoming.uri,
        request_events(speech_pcm("what time is it")),
        until=lambda got: got[-1].type in ("transcript", "error"),
    )
    assert types(received) == ["transcript"] and transcript(received) == "what time is it"


def test_speech_without_words_gives_an_empty_transcript(server):
    received = exchange(server.wyoming.uri, request_events(silence(1.0, 16000), name="commands"))
    assert types(received) == ["transcript-start", "transcript", "transcript-stop"]
    assert transcript(received) == ""


def start(rate=16000, width=2, channels=1) -> Event:
    return AudioStart(rate=rate, width=width, channels=channels).event()


def chunk(rate=16000, width=2, channels=1) -> Event:
    return AudioChunk(rate=rate, width=width, channels=channels, audio=silence(0.1, rate)).event()


@pytest.mark.parametrize(
    ("events", "code", "says"),
    [
        ([chunk(), chunk(), AudioStop().event()], "audio-not-started", "audio-chunk before audio-start"),
        ([AudioStop().event()], "audio-not-started", "audio-stop without audio-start"),
        (
            [start(rate=22050), chunk(rate=22050)],
            "unsupported-audio",
            "rate 22050 is not supported; use one of 8000, 16000, 48000",
        ),
        ([start(width=4), chunk(width=4)], "unsupported-audio", "width 4 is not supported: audio must be 16-bit"),
        (
            [start(channels=2), chunk(channels=2)],
            "unsupported-audio",
            "channels 2 is not supported: audio must be mono",
        ),
        (
            [start(), chunk(), chunk(rate=48000)],
            "unsupported-audio",
            "audio-chunk of rate 48000, width 2, channels 1 in a stream that audio-start opened as rate 16000",
        ),
        (
            [Transcribe(name="nope").event(), start()],
            "unknown-model",
            "model 'nope' is not available; available: en-US, lights, commands",
        ),
        (
            [Transcribe(language="de-DE").event()],
            "unknown-model",
            "language de-DE has no installed model; installed: en-US",
        ),
        ([Transcribe(name="en-US", language="fr").event()], "unknown-model", "is the en-US open model"),
        ([Event(type="audio-start", data={"rate": 16000})], "bad-event", "audio-start: a required field is missing"),
        ([Event(type="audio-start", data={"rate": "16000", "width": 2, "channels": 1})], "bad-event", "whole numbers"),
        ([start(), start()], "stream-open", "audio-start while an audio stream is open"),
        ([start(), Transcribe().event()], "stream-open", "transcribe while an audio stream is open"),
        ([SelectProgram(name="faster-whisper").event()], "unknown-program", "this server's ASR program is 'voiced'"),
    ],
)
def test_a_request_that_cannot_be_served_gets_an_error_then_a_close_and_the_server_goes_on(
    server, events, code, says, speech_pcm
):
    received = exchange(server.wyoming.uri, events, until=None)  # read until the server closes
    assert types(received[-1:]) == ["error"] and received[-1].data["code"] == code, received
    assert says in received[-1].data["text"]
    assert set(types(received[:-1])) <= {"transcript-start"}
    assert server.wyoming.wait_idle(60)
    assert transcript(exchange(server.wyoming.uri, request_events(speech_pcm("what time is it")))) == "what time is it"


def test_an_event_type_it_does_not_serve_gets_an_error_and_the_connection_goes_on(server):
    received = exchange(
        server.wyoming.uri,
        [Event(type="synthesize", data={"text": "hi"}), Ping(text="x").event(), Describe().event()],
        until=lambda got: got[-1].type == "info",
    )
    assert types(received) == ["error", "pong", "info"]
    assert received[0].data["code"] == "unknown-event" and "'synthesize' is not served here" in received[0].data["text"]
    assert received[1].data["text"] == "x"


async def raw_exchange(uri: str, data: bytes) -> list[Event]:
    """Bytes no library would write; the answer read with the library until the server closes."""
    reader, writer = await asyncio.open_connection(*tcp_address(uri))
    writer.write(data)
    await writer.drain()
    received = []
    while (event := await async_read_event(reader)) is not None:
        received.append(event)
    writer.close()
    return received


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"this is not json\n", "not a line of JSON"),
        (b'["audio-start"]\n', "a JSON object with a string 'type'"),
        (b'{"data": {"rate": 16000}}\n', "a JSON object with a string 'type'"),
        (
            b'{"type": "audio-chunk", "payload_length": 10000000000}\n',
            "an event of 10000000000 bytes is over the limit",
        ),
        (b'{"type": "audio-chunk", "payload_length": "many"}\n', "payload_length must be a whole number"),
        (b'{"type": "transcribe", "data": [1]}\n', "'data' must be a JSON object"),
        (b'{"type": "transcribe", "data_length": 3}\n[1]', "additional data must be a JSON object"),
        (b'{"type": "describe", "pad": "' + b"x" * 70000 + b'"}\n', "an event header is too long"),
    ],
)
def test_bytes_that_are_no_event_get_an_error_then_a_close(server, data, says):
    received = asyncio.run(asyncio.wait_for(raw_exchange(server.wyoming.uri, data), 60))
    assert types(received) == ["error"] and received[0].data["code"] == "bad-event"
    assert says in received[0].data["text"]
    assert types(exchange(server.wyoming.uri, [Describe().event()], until=lambda got: True)) == ["info"]


def test_a_client_gone_mid_stream_frees_its_decoder_and_the_next_request_is_served(limited, speech_pcm):
    pcm = speech_pcm("what time is it")

    async def vanish() -> None:
        async with AsyncTcpClient(*tcp_address(limited.wyoming.uri)) as client:
            for event in request_events(pcm)[:-1][: len(request_events(pcm)) // 2]:
                await client.write_event(event)
            assert (await client.read_event()).type == "transcript-start"  # it holds the only slot now

    decoders_mb = limited.decoders.budget.used_mb  # the decoder loaded at start, idle
    asyncio.run(asyncio.wait_for(vanish(), 60))
    assert limited.wyoming.wait_idle(60)
    assert transcript(exchange(limited.wyoming.uri, request_events(pcm))) == "what time is it"
    responses, error = call(limited.target, [config_request(), *audio_requests(pcm)])
    assert error is None and finals(responses) == ["what time is it"]
    assert limited.decoders.budget.used_mb == decoders_mb  # both took the decoder it gave back: none was loaded


def test_one_stream_cap_over_both_apis(limited, speech_pcm):
    pcm = speech_pcm("what time is it")

    async def hold_then_finish() -> tuple[list[str], str]:
        async with AsyncTcpClient(*tcp_address(limited.wyoming.uri)) as holder:
            for event in request_events(pcm)[:-1]:
                await holder.write_event(event)
            assert (await holder.read_event()).type == "transcript-start"
            busy = await asyncio.to_thread(exchange, limited.wyoming.uri, request_events(pcm), None)
            _, refused = await asyncio.to_thread(call, limited.target, [config_request(), *audio_requests(pcm)])
            await holder.write_event(AudioStop().event())
            while (event := await holder.read_event()).type != "transcript":
                pass
            return [busy[-1].data["code"], refused.code()], event.data["text"]

    refusals, text = asyncio.run(asyncio.wait_for(hold_then_finish(), 120))
    assert refusals == ["busy", grpc.StatusCode.RESOURCE_EXHAUSTED] and text == "what time is it"


def test_a_stream_whose_client_falls_silent_ends_at_the_gap_limit():
    running = start_server(
        ServerSettings(limits=ServerLimits(max_gap_s=0.5), preload=()).with_wyoming("tcp://127.0.0.1:0")
    )
    try:
        received = exchange(running.wyoming.uri, [start(), chunk()], until=None)
        assert types(received) == ["transcript-start", "error"] and received[-1].data["code"] == "timeout"
        assert "no event within 0.5 s while a stream is open" in received[-1].data["text"]
        assert running.wyoming.wait_idle(60)
    finally:
        running.stop()


def test_audio_past_the_session_limit_ends_the_stream(limited):
    received = exchange(limited.wyoming.uri, request_events(silence(5.0, 16000)), until=None)
    assert types(received) == ["transcript-start", "error"] and received[-1].data["code"] == "limit"
    assert "session audio limit reached (4 s)" in received[-1].data["text"]
    assert limited.wyoming.wait_idle(60)


def test_a_stop_answers_the_stream_in_flight_closes_idle_connections_and_ends_in_time(speech_pcm):
    running = start_server(ServerSettings().with_wyoming("tcp://127.0.0.1:0"))
    pcm = speech_pcm("what time is it")

    async def stop_while_connected() -> tuple[bool, list[str], object]:
        async with (
            AsyncTcpClient(*tcp_address(running.wyoming.uri)) as idle,
            AsyncTcpClient(*tcp_address(running.wyoming.uri)) as busy,
        ):
            await idle.write_event(Describe().event())
            assert (await idle.read_event()).type == "info"
            for event in request_events(pcm)[:-1]:
                await busy.write_event(event)
            assert (await busy.read_event()).type == "transcript-start"
            stopping = asyncio.create_task(asyncio.to_thread(running.stop, 5.0))
            assert await idle.read_event() is None  # an idle connection closes at once
            await busy.write_event(AudioStop().event())
            answer = [(await busy.read_event()).type for _ in range(3)]
            return await stopping, answer, await busy.read_event()

    stopped, answer, after = asyncio.run(asyncio.wait_for(stop_while_connected(), 60))
    assert stopped and answer == ["transcript-chunk", "transcript", "transcript-stop"] and after is None
