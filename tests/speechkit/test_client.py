"""The SpeechKit v2 client against the real local server on loopback."""

from __future__ import annotations

import threading

import pytest

from voiced.protocol.results import Final, Partial, SessionError
from voiced.speechkit.client import SpeechKitClient
from voiced.speechkit.config import RecognitionSettings
from voiced.testing import free_port, silence


def run_session(client: SpeechKitClient, pcm: bytes, chunk_bytes: int = 3200) -> list:
    """Send `pcm` in pieces, half-close, and collect every event until the call ends."""
    session = client.session()
    for start in range(0, len(pcm), chunk_bytes):
        session.send(pcm[start : start + chunk_bytes])
    session.finish()
    return list(session.events())


def finals(events) -> list[Final]:
    return [e for e in events if isinstance(e, Final)]


# 8 kHz audio lacks the upper band the wheel's 16 kHz acoustic model was trained on: the
# open LM gets it wrong too often, a grammar model gets it exactly
@pytest.mark.parametrize(
    ("voice", "rate", "model", "text", "expected"),
    [
        ("flite:slt", 16000, "general", "turn on the kitchen lights", "kitchen"),
        ("flite:kal16", 8000, "lights", "open the garage door", "open the garage door"),
        ("espeak:en-us", 16000, "lights", "open the garage door", "open the garage door"),
        ("flite:awb", 48000, "general", "what time is it", "what time"),
        ("flite:rms", 48000, "lights", "turn on the garage lights", "turn on the garage lights"),
    ],
)
def test_speech_gives_partials_then_a_final_with_the_words(
    local_server, speech_pcm, voice, rate, model, text, expected
):
    settings = RecognitionSettings(sample_rate=rate, model=model, partial_results=True)
    with SpeechKitClient(settings, local_server.target) as client:
        events = run_session(client, speech_pcm(text, voice, rate))
    assert not [e for e in events if isinstance(e, SessionError)], events
    (final,) = finals(events)
    assert expected in final.text, events
    assert 0.0 < final.confidence <= 1.0
    first_partial = next(i for i, e in enumerate(events) if isinstance(e, Partial))
    assert first_partial < events.index(final)
    # words carry times inside the audio sent, in order
    assert final.words and all(0 <= w.start_s <= w.end_s for w in final.words)
    assert [w.start_s for w in final.words] == sorted(w.start_s for w in final.words)


def test_without_partial_results_only_finals_arrive(local_server, speech_pcm):
    with SpeechKitClient(RecognitionSettings(partial_results=False), local_server.target) as client:
        events = run_session(client, speech_pcm("open the garage door", "flite:kal16"))
    assert events and all(isinstance(e, Final) for e in events), events


def test_two_utterances_in_one_session_give_two_finals(local_server, speech_pcm):
    pcm = (
        speech_pcm("turn on the kitchen lights", "flite:slt")
        + silence(1.0, 16000)
        + speech_pcm("open the garage door", "flite:kal16")
    )
    with SpeechKitClient(RecognitionSettings(partial_results=False), local_server.target) as client:
        texts = [f.text for f in finals(run_session(client, pcm))]
    assert len(texts) == 2 and "kitchen" in texts[0] and "garage" in texts[1], texts


def test_server_rejection_ends_the_session_with_its_code_and_details(local_server, speech_pcm):
    with SpeechKitClient(RecognitionSettings(language="tr-TR"), local_server.target) as client:
        events = run_session(client, speech_pcm("hello"))
    (error,) = events
    assert isinstance(error, SessionError) and error.code == "INVALID_ARGUMENT"
    assert "en-US" in error.details  # it names the installed languages


def test_unreachable_server_is_an_unavailable_event_not_an_exception():
    target = f"127.0.0.1:{free_port()}"
    with SpeechKitClient(RecognitionSettings(), target) as client:
        events = run_session(client, b"\x00\x00" * 1600)
    assert len(events) == 1 and events[0].code == "UNAVAILABLE"


def test_cancel_ends_the_events_without_an_error(local_server, speech_pcm):
    with SpeechKitClient(RecognitionSettings(), local_server.target) as client:
        session = client.session()
        session.send(speech_pcm("turn on the kitchen lights"))
        events, ended = [], threading.Event()

        def read():
            events.extend(session.events())
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        session.cancel()
        assert ended.wait(10), "events() did not end after cancel()"
        session.send(b"\x00\x00")  # racing senders after a cancel are ignored, not errors
    assert not [e for e in events if isinstance(e, SessionError)], events


def test_send_after_finish_is_a_programming_error(local_server):
    with SpeechKitClient(RecognitionSettings(), local_server.target) as client:
        session = client.session()
        session.finish()
        with pytest.raises(RuntimeError, match="after finish"):
            session.send(b"\x00\x00")
        assert not [e for e in session.events() if isinstance(e, SessionError)]


def test_session_deadline_ends_a_stalled_call(local_server):
    settings = RecognitionSettings(timeouts={"session_s": 0.5})
    with SpeechKitClient(settings, local_server.target) as client:
        session = client.session()
        session.send(b"\x00\x00" * 1600)  # then nothing, and no half-close
        events = list(session.events())
    assert [e.code for e in events] == ["DEADLINE_EXCEEDED"]
