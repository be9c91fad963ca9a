"""The daemon's recognizer against real servers on loopback: auth and TLS, IAM, session
limits, retries, fallback and a server killed mid-utterance."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.cloud_fixtures import FakeIam, ServiceAccountKeyPair, iam_tokens, self_signed_certificate, start_iam
from tests.conftest import LIGHTS_GRAMMAR
from voiced.ops.metrics import VoicedMetrics
from voiced.protocol.results import EndpointSwitched, Final, Retrying, SessionError
from voiced.server.app import start_server
from voiced.server.config import AuthSettings, GrammarModel, ServerLimits, ServerSettings, TlsSettings
from voiced.speechkit.auth import credentials_for
from voiced.speechkit.client import SpeechKitClient
from voiced.speechkit.config import RecognitionSettings
from voiced.speechkit.recognizer import Recognizer
from voiced.testing import free_port, silence

API_KEY = "AQVN" + secrets.token_hex(16)
USER_TOKEN = "t1.user-" + secrets.token_hex(16)
IAM_TOKENS = iam_tokens(3)
FAST_RETRY = {"attempts": 3, "initial_s": 0.1, "max_s": 0.3, "jitter_s": 0.05, "fallback_after": 2}


def recognize(recognizer, pcm: bytes, chunk_bytes: int = 3200) -> list:
    session = recognizer.session()
    for start in range(0, len(pcm), chunk_bytes):
        session.send(pcm[start : start + chunk_bytes])
    session.finish()
    return list(session.events())


def texts(events) -> list[str]:
    return [e.text for e in events if isinstance(e, Final) and e.text]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A TLS server with auth, an IAM endpoint that issues the tokens it accepts, the key."""
    directory = tmp_path_factory.mktemp("cloud")
    cert, key = self_signed_certificate(directory)
    pair = ServiceAccountKeyPair()
    # the first issued token is refused by STT (as if revoked): a client must re-fetch once
    iam = FakeIam(pair, IAM_TOKENS, lifetime_s=12 * 3600)
    iam_server, iam_target = start_iam(iam)
    server = start_server(
        ServerSettings(
            auth=AuthSettings(api_keys=(API_KEY,), bearer_tokens=(USER_TOKEN, *IAM_TOKENS[1:])),
            tls=TlsSettings(cert_file=cert, key_file=key),
        )
    )
    (directory / "sa-key.json").write_text(pair.json())
    (directory / "user-token").write_text(USER_TOKEN + "\n")
    yield {"server": server, "ca": cert, "dir": directory, "iam": iam, "iam_target": iam_target, "pair": pair}
    server.stop(0)
    iam_server.stop(0)


def cloud_settings(cloud, **credential) -> RecognitionSettings:
    return RecognitionSettings(
        endpoint=f"localhost:{cloud['server'].port}",
        ca_file=cloud["ca"],
        iam={"endpoint": cloud["iam_target"], "tls": False},
        retry=FAST_RETRY,
        **credential,
    )


def connect(settings: RecognitionSettings, **kwargs) -> Recognizer:
    return Recognizer(settings, settings.endpoint, credentials=credentials_for(settings), **kwargs)


@pytest.mark.parametrize("kind", ["api_key", "iam_token", "service_account_key"])
def test_each_credential_kind_authenticates_over_tls(cloud, kind, speech_pcm, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VOICED_TEST_API_KEY", API_KEY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(cloud["dir"]))
    source = {
        "api_key": {"env": "VOICED_TEST_API_KEY"},
        "iam_token": {"file": cloud["dir"] / "user-token"},
        "service_account_key": {"credential": "sa-key.json"},
    }[kind]
    with connect(cloud_settings(cloud, **{kind: source})) as recognizer:
        events = recognize(recognizer, speech_pcm("turn on the kitchen lights"))
    assert not [e for e in events if isinstance(e, SessionError)], events
    assert any("kitchen" in t for t in texts(events)), events
    if kind == "service_account_key":  # token 0 was refused: refreshed once, then accepted
        assert [e.code for e in events if isinstance(e, Retrying)] == ["UNAUTHENTICATED"]
    out, err = capfd.readouterr()
    for secret in (API_KEY, USER_TOKEN, *IAM_TOKENS, "PRIVATE KEY"):
        assert secret not in caplog.text + out + err


def test_a_wrong_key_is_refused_clearly_and_later_sessions_back_off(cloud, speech_pcm, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    wrong = "AQVN" + secrets.token_hex(16)
    monkeypatch.setenv("VOICED_TEST_API_KEY", wrong)
    with connect(cloud_settings(cloud, api_key={"env": "VOICED_TEST_API_KEY"})) as recognizer:
        events = recognize(recognizer, speech_pcm("turn on the kitchen lights"))
        error = events[-1]
        assert isinstance(error, SessionError) and error.code == "UNAUTHENTICATED"
        assert "API key sha256:" in error.details and "env VOICED_TEST_API_KEY" in error.details
        assert [e.code for e in events if isinstance(e, Retrying)] == ["UNAUTHENTICATED"]  # refreshed once
        started = time.monotonic()
        (again,) = recognize(recognizer, speech_pcm("turn on the kitchen lights"))
        assert again.code == "UNAUTHENTICATED" and "not trying again" in again.details
        assert time.monotonic() - started < 1.0
    out, err = capfd.readouterr()
    assert wrong not in caplog.text + out + err and API_KEY not in caplog.text + out + err


def test_a_service_account_key_iam_does_not_know_is_refused(cloud, speech_pcm, tmp_path):
    (tmp_path / "stranger.json").write_text(ServiceAccountKeyPair().json())
    settings = cloud_settings(cloud, service_account_key={"file": tmp_path / "stranger.json"})
    with connect(settings) as recognizer:
        events = recognize(recognizer, speech_pcm("turn on the kitchen lights"))
    assert isinstance(events[-1], SessionError) and events[-1].code == "UNAUTHENTICATED"
    assert "invalid JWT" in events[-1].details


def test_no_ca_file_means_the_self_signed_server_is_not_trusted(cloud, speech_pcm, monkeypatch):
    monkeypatch.setenv("VOICED_TEST_API_KEY", API_KEY)
    settings = cloud_settings(cloud, api_key={"env": "VOICED_TEST_API_KEY"}).model_copy(
        update={"ca_file": None, "tls": True, "retry": cloud_settings(cloud).retry.model_copy(update={"attempts": 1})}
    )
    with connect(settings) as recognizer:
        (error,) = recognize(recognizer, speech_pcm("hello"))
    assert error.code == "UNAVAILABLE" and "not reachable" in error.details


@pytest.fixture(scope="module")
def small_limits_server():
    server = start_server(
        ServerSettings(
            models={"lights": GrammarModel(jsgf=LIGHTS_GRAMMAR)}, limits=ServerLimits(max_audio_s=3.0, max_gap_s=2.0)
        )
    )
    yield server
    server.stop(0)


@pytest.mark.parametrize("encoding", ["LINEAR16_PCM", "OGG_OPUS"])
def test_long_input_rolls_across_sessions_with_the_single_session_result(
    small_limits_server, local_server, speech_pcm, encoding
):
    phrases = [
        "turn on the kitchen lights",
        "open the garage door",
        "turn off the bedroom lights",
        "turn on the garage lights",
        "turn off the kitchen lights",
    ]
    pcm = b"".join(speech_pcm(p, pad_s=0) + silence(1.0, 16000) for p in phrases)  # ~13 s
    with SpeechKitClient(RecognitionSettings(partial_results=False, model="lights"), local_server.target) as single:
        session = single.session()
        session.send(pcm)
        session.finish()
        expected = texts(session.events())
    # the roll margin must exceed the longest utterance: 1.5 s of 3 s here (30 s of 300 by default)
    settings = RecognitionSettings(
        partial_results=False,
        model="lights",
        encoding=encoding,
        limits={"max_audio_s": 3.0, "max_gap_s": 2.0, "roll_margin": 0.5},
    )
    with Recognizer(settings, small_limits_server.target) as recognizer:
        session = recognizer.session()
        for start in range(0, len(pcm), 3200):
            session.send(pcm[start : start + 3200])
        session.finish()
        events = list(session.events())
    assert not [e for e in events if isinstance(e, (SessionError, Retrying))], events
    assert session.core.calls_opened >= 4  # 11 s through calls of at most 3 s
    assert texts(events) == expected == phrases


def test_no_gap_reaches_the_server_limit_while_the_caller_pauses(small_limits_server, speech_pcm):
    settings = RecognitionSettings(partial_results=False, limits={"max_gap_s": 2.0})
    with Recognizer(settings, small_limits_server.target) as recognizer:
        session = recognizer.session()
        session.send(speech_pcm("turn on the kitchen lights"))
        time.sleep(2.6)  # the server would end the call after 2 s without a message
        session.send(speech_pcm("open the garage door"))
        session.finish()
        events = list(session.events())
    assert not [e for e in events if isinstance(e, SessionError)], events
    assert session.core.calls_opened == 2
    assert len(texts(events)) == 2 and "garage" in texts(events)[1]


def test_unreachable_primary_falls_back_and_returns_when_it_answers(local_server, speech_pcm):
    port = free_port()
    settings = RecognitionSettings(
        endpoint=f"127.0.0.1:{port}",
        retry=FAST_RETRY,
        timeouts={"connect_s": 1.0},
        fallback={"endpoint": local_server.target, "probe_interval_s": 0.2},
    )
    metrics = VoicedMetrics()
    with Recognizer(
        settings, settings.endpoint, fallback_target=local_server.target, on_switch=metrics.fallback_switched
    ) as recognizer:
        events = recognize(recognizer, speech_pcm("turn on the kitchen lights"))
        assert any("kitchen" in t for t in texts(events)), events
        assert [e.to for e in events if isinstance(e, EndpointSwitched)] == ["fallback"]
        assert metrics.registry.get_sample_value("voiced_fallback_switches_total", {"to": "fallback"}) == 1
        events = recognize(recognizer, speech_pcm("open the garage door"))  # straight to the fallback
        assert "garage" in " ".join(texts(events)) and not [e for e in events if isinstance(e, Retrying)]
        primary = start_server(ServerSettings(), port=port)
        try:
            deadline = time.monotonic() + 15
            while recognizer.health.on_fallback and time.monotonic() < deadline:
                time.sleep(0.1)
            events = recognize(recognizer, speech_pcm("what time is it"))
        finally:
            primary.stop(0)
    assert [e.to for e in events if isinstance(e, EndpointSwitched)] == ["primary"]
    assert "what time" in " ".join(texts(events)), events
    assert metrics.registry.get_sample_value("voiced_fallback_switches_total", {"to": "primary"}) == 1


def serve(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "voiced", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("voiced serve did not start")


def test_server_killed_mid_utterance_is_reported_and_the_next_session_works(speech_pcm):
    port = free_port()
    process = serve(port)
    pcm = speech_pcm("turn on the kitchen lights")
    settings = RecognitionSettings(endpoint=f"127.0.0.1:{port}", retry=FAST_RETRY, timeouts={"connect_s": 1.0})
    try:
        with Recognizer(settings, settings.endpoint) as recognizer:
            session = recognizer.session()
            session.send(pcm[: len(pcm) // 2])
            time.sleep(0.5)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            session.send(pcm[len(pcm) // 2 :])
            session.finish()
            events = list(session.events())
            retries = [e for e in events if isinstance(e, Retrying)]
            assert retries and all(e.code == "UNAVAILABLE" for e in retries), events
            assert [r.attempt for r in retries] == [2, 3] and retries[1].delay_s >= retries[0].delay_s * 0.5
            assert isinstance(events[-1], SessionError) and events[-1].code == "UNAVAILABLE"
            process = serve(port)
            events = recognize(recognizer, pcm)
            assert any("kitchen" in t for t in texts(events)), events
    finally:
        process.kill()
        process.wait(10)
