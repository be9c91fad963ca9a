"""Metrics: a scripted session through the event sink, scraped over real HTTP."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from voiced.config.loader import ConfigError, parse_yaml, validate
from voiced.events import FinalEvent, SessionErrorEvent, SpeechEndedEvent, SpeechStartedEvent
from voiced.ops.metrics import MetricsServer, MetricsSettings, MetricsSink, VoicedMetrics, serve_metrics


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scripted_session(metrics: VoicedMetrics) -> None:
    """Two utterances: one recognized and matched, one failed by the server."""
    clock = ManualClock()
    sink = MetricsSink(metrics, clock)
    sink(SpeechStartedEvent(session=1, audio_s=0.0, pre_roll_s=0.5))
    metrics.bytes_sent(32000)
    sink(SpeechEndedEvent(session=1, audio_s=1.5, duration_s=1.0, reason="silence"))
    clock.now += 0.4
    sink(FinalEvent(session=1, text="turn on the light", confidence=0.9))
    sink(FinalEvent(session=1, text="turn on the light", confidence=0.9))  # a repeat is not a latency
    sink({"type": "command_matched", "session": 1, "intent": "LightOn"})
    clock.now += 0.25
    sink({"type": "actions_done", "session": 1, "intent": "LightOn", "failed": 0})
    sink({"type": "speech_started", "session": 2, "audio_s": 3.0, "pre_roll_s": 0.5})
    metrics.bytes_sent(6400)
    sink(SessionErrorEvent(session=2, code="UNAVAILABLE", details="connection refused"))
    metrics.fallback_switched("local")


@pytest.fixture
def served():
    metrics = VoicedMetrics()
    server = serve_metrics(metrics, MetricsSettings(enabled=True, port=0))
    yield metrics, server
    server.stop()


def test_counters_scraped_over_http_after_a_scripted_session(served):
    metrics, server = served
    _scripted_session(metrics)
    response = httpx.get(server.url, timeout=10, trust_env=False)
    assert response.status_code == 200
    samples = _samples(response.text)
    assert samples[("voiced_sessions_total", ())] == 2
    assert samples[("voiced_active_sessions", ())] == 0
    assert samples[("voiced_utterances_total", (("outcome", "matched"),))] == 1
    assert samples[("voiced_errors_total", (("status", "UNAVAILABLE"),))] == 1
    assert samples[("voiced_audio_sent_bytes_total", ())] == 38400
    assert samples[("voiced_fallback_switches_total", (("to", "local"),))] == 1
    assert samples[("voiced_speech_end_to_final_seconds_count", ())] == 1
    assert samples[("voiced_speech_end_to_final_seconds_sum", ())] == pytest.approx(0.4)
    assert samples[("voiced_speech_end_to_final_seconds_bucket", (("le", "0.3"),))] == 0
    assert samples[("voiced_speech_end_to_final_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("voiced_final_to_action_done_seconds_count", ())] == 1


def test_each_instance_has_its_own_registry(served):
    _metrics, server = served
    other = VoicedMetrics()  # a second daemon in one process (tests) must not collide
    other.error("audio")
    samples = _samples(httpx.get(server.url, timeout=10, trust_env=False).text)
    assert ("voiced_errors_total", (("status", "audio"),)) not in samples
    assert b'voiced_errors_total{status="audio"} 1.0' in other.exposition()


def test_audio_errors_are_counted_under_their_own_status():
    metrics = VoicedMetrics()
    MetricsSink(metrics)({"type": "audio_error", "source": "mic", "details": "gone", "retry_in_s": 1.0})
    assert _samples(metrics.exposition().decode())[("voiced_errors_total", (("status", "audio"),))] == 1


def test_wake_words_are_counted_heard_and_timed_out():
    metrics = VoicedMetrics()
    sink = MetricsSink(metrics)
    for event in ({"type": "wake_detected", "model": "alexa", "score": 0.97, "audio_s": 1.2},) * 2 + (
        {"type": "wake_timeout", "audio_s": 9.0, "waited_s": 5.0},
    ):
        sink(event)
    samples = _samples(metrics.exposition().decode())
    assert samples[("voiced_wake_words_total", (("outcome", "heard"),))] == 2
    assert samples[("voiced_wake_words_total", (("outcome", "timeout"),))] == 1


def test_disabled_by_default_and_loopback_only():
    settings = MetricsSettings()
    assert not settings.enabled and settings.host == "127.0.0.1"
    assert serve_metrics(VoicedMetrics(), settings) is None


def test_settings_errors_are_located():
    doc = parse_yaml("metrics:\n  enabled: true\n  port: 70000\n", "voiced.yaml")
    with pytest.raises(ConfigError) as error:
        validate(MetricsSettings, doc, ("metrics",))
    assert str(error.value).startswith("voiced.yaml:3:9: metrics.port:")


def test_server_stops_and_frees_its_port():
    metrics = VoicedMetrics()
    server = MetricsServer(metrics, "127.0.0.1", 0)
    url = server.url
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5, trust_env=False)


def test_outcomes_and_a_final_from_the_server_before_the_end_of_speech():
    metrics = VoicedMetrics()
    sink = MetricsSink(metrics, ManualClock())
    sink(SpeechStartedEvent(session=1, audio_s=0.0, pre_roll_s=0.5))
    # the server heard the end first: its final, then our speech_ended (reason "server")
    sink(FinalEvent(session=1, text="what time is it", confidence=0.8))
    sink(SpeechEndedEvent(session=1, audio_s=1.5, duration_s=1.0, reason="server"))
    sink({"type": "rejected", "session": 1, "text": "what time is it"})
    sink(SpeechStartedEvent(session=2, audio_s=3.0, pre_roll_s=0.5))
    sink(SpeechEndedEvent(session=2, audio_s=4.0, duration_s=1.0, reason="silence"))
    sink(FinalEvent(session=2, text="", confidence=0.0))
    sink({"type": "rejected", "session": 2, "text": ""})
    sink({"type": "confirmation_asked", "session": 3, "intent": "SetTimer", "question": "Поставь таймер?"})
    samples = _samples(metrics.exposition().decode())
    assert samples[("voiced_active_sessions", ())] == 0
    assert samples[("voiced_utterances_total", (("outcome", "asked_back"),))] == 1
    assert samples[("voiced_utterances_total", (("outcome", "unmatched"),))] == 1
    assert samples[("voiced_utterances_total", (("outcome", "empty"),))] == 1
    assert samples[("voiced_speech_end_to_final_seconds_count", ())] == 1  # only session 2's
    assert not sink._speech_ended_at and not sink._final_at  # nothing kept for finished sessions


def test_questions_to_home_assistant_are_counted_by_outcome_and_timed():
    metrics = VoicedMetrics()
    sink = MetricsSink(metrics)
    asked = {"type": "conversation_started", "text": "what time is it", "language": "en", "session": 1}
    answered = {**asked, "type": "conversation_answered", "answer": "It is 5", "duration_s": 0.4}
    for event in (
        asked,
        {**answered, "response_type": "query_answer"},
        asked,
        {**answered, "response_type": "error", "error_code": "no_intent_match"},
        asked,
        {**asked, "type": "conversation_failed", "stage": "ask", "error": "HTTP 500"},
        {**asked, "type": "conversation_failed", "stage": "speak", "error": "aplay exited with 1"},
    ):
        sink(event)
    samples = _samples(metrics.exposition().decode())
    assert samples[("voiced_utterances_total", (("outcome", "conversation"),))] == 3
    assert samples[("voiced_conversations_total", (("outcome", "answered"),))] == 1
    assert samples[("voiced_conversations_total", (("outcome", "refused"),))] == 1
    assert samples[("voiced_conversations_total", (("outcome", "failed"),))] == 1
    assert samples[("voiced_conversation_answer_seconds_count", ())] == 2


def test_a_daemon_with_metrics_off_never_loads_prometheus_client(tmp_path):
    """~4 MB of a ~60 MB daemon: only an enabled endpoint may load it."""
    import subprocess
    import sys
    import wave

    audio = tmp_path / "silence.wav"
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(bytes(32000))
    config = tmp_path / "voiced.yaml"
    config.write_text("recognition: {endpoint: '127.0.0.1:9', tls: false}\ncommands: {files: []}\n")
    code = (
        "import sys\nfrom voiced.cli import main\n"
        f"rc = main(['run', '--config', {str(config)!r}, '--input', {str(audio)!r}, '--fast'])\n"
        "print('exit', rc, 'prometheus_client' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip().splitlines()[-1] == "exit 0 False", run.stderr
