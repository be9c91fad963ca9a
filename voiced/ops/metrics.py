"""Prometheus metrics of the daemon, on a registry of its own, served over HTTP on request.

`VoicedMetrics` is the recording API; `MetricsSink` derives most of it from the pipeline
events (voiced.events), so the daemon only adds it to its event fan-out and reports the few
things no event carries (bytes sent, fallback switches, action latency). Latencies that span
two events are measured with this sink's own monotonic clock when the events arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pydantic

from voiced.config.loader import FrozenModel
from voiced.events import event_dict

# recognition and action latencies of a voice command: tens of ms (local grammar) to seconds (cloud)
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class MetricsSettings(FrozenModel):
    """The `metrics:` section. Off by default; loopback only unless a host is given."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = pydantic.Field(9310, ge=0, le=65535, description="0 = any free port")


class VoicedMetrics:
    def __init__(self) -> None:
        # imported here: a daemon with metrics off never loads prometheus_client (~4 MB)
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Counter("voiced_sessions", "Recognition sessions opened", registry=r)
        self.active_sessions = Gauge("voiced_active_sessions", "Recognition sessions in progress", registry=r)
        self.utterances = Counter(
            "voiced_utterances",
            "Final results, by outcome (matched, unmatched, empty, conversation: asked of Home Assistant, "
            "asked_back: a number said back to be confirmed)",
            ["outcome"],
            registry=r,
        )
        self.errors = Counter("voiced_errors", "Errors, by gRPC status code or source (audio)", ["status"], registry=r)
        self.speech_end_to_final = Histogram(
            "voiced_speech_end_to_final_seconds",
            "From the end of speech to the final result",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.final_to_action_done = Histogram(
            "voiced_final_to_action_done_seconds",
            "From the final result to the command's actions finished",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audio_sent = Counter("voiced_audio_sent_bytes", "Audio bytes sent to the recognizer", registry=r)
        self.wake_words = Counter(
            "voiced_wake_words", "Wake words: heard, and waits for the command that timed out", ["outcome"], registry=r
        )
        self.conversations = Counter(
            "voiced_conversations",
            "Questions to Home Assistant, by outcome (answered, refused: its error answer, failed)",
            ["outcome"],
            registry=r,
        )
        self.conversation_answer = Histogram(
            "voiced_conversation_answer_seconds",
            "From asking Home Assistant to its answer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fallback_switches = Counter(
            "voiced_fallback_switches", "Switches between recognizers, by target", ["to"], registry=r
        )

    def session_started(self) -> None:
        self.sessions.inc()
        self.active_sessions.inc()

    def session_ended(self) -> None:
        self.active_sessions.dec()

    def utterance(self, outcome: str) -> None:
        self.utterances.labels(outcome=outcome).inc()

    def error(self, status: str) -> None:
        self.errors.labels(status=status).inc()

    def observe_speech_end_to_final(self, seconds: float) -> None:
        self.speech_end_to_final.observe(seconds)

    def observe_final_to_action_done(self, seconds: float) -> None:
        self.final_to_action_done.observe(seconds)

    def bytes_sent(self, count: int) -> None:
        self.audio_sent.inc(count)

    def wake_word(self, outcome: str) -> None:
        self.wake_words.labels(outcome=outcome).inc()

    def conversation(self, outcome: str, answered_in_s: float | None = None) -> None:
        self.conversations.labels(outcome=outcome).inc()
        if answered_in_s is not None:
            self.conversation_answer.observe(answered_in_s)

    def fallback_switched(self, to: str) -> None:
        self.fallback_switches.labels(to=to).inc()

    def exposition(self) -> bytes:
        """The text format a scrape returns."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class MetricsSink:
    """An EventSink that updates `metrics` from the pipeline events.

    speech_started opens a session, speech_ended ends it and starts the latency clock,
    final observes end-of-speech -> final (only the first final after the end of speech) and
    starts the action clock, actions_done observes final -> actions done, command_matched /
    rejected count the utterance's outcome (matched, unmatched, empty), session_error and
    audio_error count errors, wake_detected / wake_timeout count wake words (heard, timed out),
    conversation_started counts the utterance (conversation), conversation_answered and
    conversation_failed (asking: not speaking the answer) the question's outcome;
    confirmation_asked counts the utterance too (asked_back: a number said back to confirm).
    """

    KEEP = 64  # sessions whose clocks are kept (a final may have no command, a command no actions)

    def __init__(self, metrics: VoicedMetrics, clock: Callable[[], float] = time.monotonic):
        self.metrics = metrics
        self._clock = clock
        self._speech_ended_at: dict[int, float] = {}
        self._final_at: dict[int, float] = {}
        self._open_sessions: set[int] = set()
        self._lock = threading.Lock()

    def _close(self, session: Any) -> None:
        if session in self._open_sessions:
            self._open_sessions.discard(session)
            self.metrics.session_ended()

    def _remember(self, clocks: dict[int, float], session: int) -> None:
        clocks[session] = self._clock()
        if len(clocks) > self.KEEP:
            del clocks[next(iter(clocks))]

    def __call__(self, event: Any) -> None:
        record = event_dict(event)
        kind, session = record.get("type"), record.get("session", 0)
        with self._lock:
            if kind == "speech_started":
                self._open_sessions.add(session)
                self.metrics.session_started()
            elif kind == "speech_ended":
                if session in self._open_sessions:  # not when the server's final came first
                    self._close(session)
                    self._remember(self._speech_ended_at, session)
            elif kind == "final":
                self._close(session)  # the server may end the utterance before our endpointer does
                ended_at = self._speech_ended_at.pop(session, None)
                if ended_at is not None:
                    self.metrics.observe_speech_end_to_final(self._clock() - ended_at)
                    self._remember(self._final_at, session)
            elif kind == "command_matched":
                self.metrics.utterance("matched")
            elif kind == "rejected":
                self.metrics.utterance("unmatched" if record.get("text") else "empty")
                self._final_at.pop(session, None)
            elif kind == "actions_done":
                final_at = self._final_at.pop(session, None)
                if final_at is not None:
                    self.metrics.observe_final_to_action_done(self._clock() - final_at)
            elif kind == "session_error":
                self.metrics.error(record["code"])
                self._speech_ended_at.pop(session, None)
                self._close(session)
            elif kind == "audio_error":
                self.metrics.error("audio")
            elif kind == "wake_detected":
                self.metrics.wake_word("heard")
            elif kind == "wake_timeout":
                self.metrics.wake_word("timeout")
            elif kind == "conversation_started":
                self.metrics.utterance("conversation")
            elif kind == "confirmation_asked":
                self.metrics.utterance("asked_back")
            elif kind == "conversation_answered":
                refused = record.get("response_type") == "error"
                self.metrics.conversation("refused" if refused else "answered", record.get("duration_s"))
            elif kind == "conversation_failed" and record.get("stage") == "ask":
                self.metrics.conversation("failed")


class MetricsServer:
    """The HTTP endpoint (any path answers with the metrics, as prometheus_client does)."""

    def __init__(self, metrics: VoicedMetrics, host: str, port: int):
        import prometheus_client

        self._server, self._thread = prometheus_client.start_http_server(port, host, registry=metrics.registry)
        self.host = host
        self.port: int = self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(metrics: VoicedMetrics, settings: MetricsSettings) -> MetricsServer | None:
    """Start the endpoint if the settings enable it."""
    if not settings.enabled:
        return None
    return MetricsServer(metrics, settings.host, settings.port)
