"""The session core's decisions: rolls, idle closes, retries, re-auth, fallback (no I/O)."""

from __future__ import annotations

import pytest

from voiced.protocol.results import EndpointSwitched, Final, Retrying, SessionError
from voiced.speechkit.config import RecognitionSettings, RetrySettings
from voiced.speechkit.resilience import (
    FALLBACK,
    PRIMARY,
    Backoff,
    CancelCall,
    Close,
    Deliver,
    EndpointHealth,
    FinishCall,
    OpenCall,
    SendToCall,
    SessionCore,
)
from voiced.testing import silence

RATE = 16000
TONE = b"\x00\x40\x00\xc0" * 800  # 0.1 s of a loud square wave: speech to webrtcvad


def core(health=None, **settings) -> SessionCore:
    settings = RecognitionSettings(**settings)
    return SessionCore(settings, health or EndpointHealth(), Backoff(settings.retry), now=0.0)


def kinds(decisions, kind):
    return [d for d in decisions if isinstance(d, kind)]


def test_audio_goes_to_one_call_in_order_and_results_come_back_in_order():
    c = core()
    decisions = c.audio(b"ab", 0.0) + c.audio(b"cd", 0.1) + c.finish(0.2)
    (opened,) = kinds(decisions, OpenCall)
    assert [d.audio for d in kinds(decisions, SendToCall)] == [b"ab", b"cd"]
    assert kinds(decisions, FinishCall) == [FinishCall(opened.call)]
    final = Final("hello", 0.9)
    assert c.event(opened.call, final, 0.3) == [Deliver(final)]
    assert c.ended(opened.call, 0.4) == [Close()]


# the core sees PCM either way (a call encodes its own Ogg Opus stream): both roll alike
@pytest.mark.parametrize("encoding", ["LINEAR16_PCM", "OGG_OPUS"])
def test_past_the_soft_limit_the_call_rolls_at_the_next_pause_without_losing_audio(speech_pcm, encoding):
    first_words = speech_pcm("turn on the kitchen lights", pad_s=0)
    gap = silence(0.8, RATE)
    stream_pcm = first_words + gap + speech_pcm("open the garage door", pad_s=0)
    c = core(encoding=encoding, limits={"max_audio_s": 2.0, "roll_margin": 0.5, "pause_s": 0.4})
    decisions = []
    for i, start in enumerate(range(0, len(stream_pcm), 960)):  # 30 ms pieces
        decisions += c.audio(stream_pcm[start : start + 960], i * 0.03)
    decisions += c.finish(9.0)
    opened = kinds(decisions, OpenCall)
    assert len(opened) >= 2
    sent = [b"".join(d.audio for d in kinds(decisions, SendToCall) if d.call == o.call) for o in opened]
    assert b"".join(sent) == stream_pcm  # nothing lost, nothing twice
    first_audio = sent[0]
    # rolled inside the pause between the utterances, not in the speech
    assert len(first_words) < len(first_audio) < len(first_words) + len(gap)


@pytest.mark.parametrize("encoding", ["LINEAR16_PCM", "OGG_OPUS"])
def test_without_a_pause_the_call_rolls_just_before_the_hard_limit(encoding):
    c = core(encoding=encoding, limits={"max_audio_s": 1.0, "pause_s": 10.0})
    decisions = []
    for i in range(25):
        decisions += c.audio(TONE, i * 0.1)
    opened = kinds(decisions, OpenCall)
    assert len(opened) == 3
    per_call = {}
    for d in kinds(decisions, SendToCall):
        per_call[d.call] = per_call.get(d.call, 0) + len(d.audio)
    assert all(size <= RATE * 2 * 1.0 for size in per_call.values()), per_call


def test_an_idle_call_is_half_closed_before_the_gap_limit_and_audio_opens_a_new_one():
    c = core(limits={"max_gap_s": 5.0})
    first = kinds(c.audio(TONE, 0.0), OpenCall)[0].call
    assert c.wake_at() <= 4.0
    assert c.tick(3.0) == []
    assert c.tick(c.wake_at()) == [FinishCall(first)]
    second = kinds(c.audio(TONE, 10.0), OpenCall)
    assert second and second[0].call != first


def test_a_retryable_failure_replays_the_audio_after_a_backoff():
    c = core(retry={"attempts": 3, "initial_s": 0.5, "max_s": 4, "jitter_s": 0})
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0].call
    decisions = c.event(first, SessionError("INTERNAL", "boom"), 1.0)
    (notice,) = [d.event for d in decisions if isinstance(d.event, Retrying)]
    assert notice.attempt == 2 and notice.delay_s == 0.5 and not kinds(decisions, OpenCall)
    c.audio(b"cd", 1.2)  # arrives during the wait: kept for the new call
    (reopened,) = kinds(c.tick(1.5), OpenCall)
    assert reopened.audio == (b"ab", b"cd")
    decisions = c.event(reopened.call, SessionError("INTERNAL", "boom"), 2.0)
    (notice,) = [d.event for d in decisions if isinstance(d.event, Retrying)]
    assert notice.delay_s == 1.0  # exponential
    (last,) = kinds(c.tick(3.0), OpenCall)
    decisions = c.event(last.call, SessionError("INTERNAL", "boom"), 3.5)
    assert decisions[-2:] == [Deliver(SessionError("INTERNAL", "boom")), Close()]  # bounded
    assert c.health.failures == 1 and c.health.retry_after == 3.5 + 0.5


def test_the_next_session_waits_out_the_backoff_then_succeeds_and_resets_it():
    health = EndpointHealth(failures=2, retry_after=1.0)
    c = core(health)
    assert not kinds(c.audio(b"ab", 0.2), OpenCall)
    assert c.wake_at() == 1.0
    (opened,) = kinds(c.tick(1.0), OpenCall)
    c.finish(1.1)
    c.ended(opened.call, 1.5)
    assert health.failures == 0


def test_unauthenticated_refreshes_once_then_fails_clearly_and_backs_off():
    health = EndpointHealth()
    c = core(health, retry={"auth_backoff_s": 30})
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0].call
    (retry,) = kinds(c.event(first, SessionError("UNAUTHENTICATED", "bad key"), 0.1), OpenCall)
    assert retry.refresh_credentials and retry.audio == (b"ab",)
    decisions = c.event(retry.call, SessionError("UNAUTHENTICATED", "bad key"), 0.2)
    assert decisions[-2:] == [Deliver(SessionError("UNAUTHENTICATED", "bad key")), Close()]
    later = core(health).audio(b"ab", 10.0)  # no call at all while backing off
    assert not kinds(later, OpenCall)
    (error,) = [d.event for d in later if isinstance(d, Deliver) and isinstance(d.event, SessionError)]
    assert error.code == "UNAUTHENTICATED" and "not trying again for 20 s" in error.details


def test_invalid_argument_is_a_configuration_error_without_retry():
    c = core()
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0].call
    decisions = c.event(first, SessionError("INVALID_ARGUMENT", "language xx-XX is not supported"), 0.1)
    assert not kinds(decisions, OpenCall)
    error = decisions[-2].event
    assert "configuration error" in error.details and "xx-XX" in error.details


def test_a_call_that_delivered_a_final_is_not_replayed():
    c = core()
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0].call
    assert c.event(first, Final("one", 0.9), 0.1) == [Deliver(Final("one", 0.9))]
    decisions = c.event(first, SessionError("UNAVAILABLE", "reset"), 0.2)
    assert not kinds(decisions, OpenCall)
    assert [d.event for d in decisions if isinstance(d, Deliver)] == [SessionError("UNAVAILABLE", "reset")]


def test_unavailable_primary_moves_the_audio_to_the_fallback_and_new_sessions_follow():
    health = EndpointHealth(has_fallback=True)
    c = core(health, retry={"fallback_after": 2, "initial_s": 0.1, "jitter_s": 0})
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0]
    assert first.target == PRIMARY
    c.event(first.call, SessionError("UNAVAILABLE", "refused"), 0.1)
    (second,) = kinds(c.tick(0.2), OpenCall)
    decisions = c.event(second.call, SessionError("UNAVAILABLE", "refused"), 0.3)
    (third,) = kinds(decisions, OpenCall)
    assert third.target == FALLBACK and third.audio == (b"ab",)
    assert EndpointSwitched(FALLBACK, "the primary is unreachable (UNAVAILABLE)") in [
        d.event for d in decisions if isinstance(d, Deliver)
    ]
    assert kinds(core(health).audio(b"cd", 1.0), OpenCall)[0].target == FALLBACK
    health.on_fallback = False  # the edge saw the primary answer again
    back = core(health).audio(b"ef", 2.0)
    assert kinds(back, OpenCall)[0].target == PRIMARY
    assert [d.event.to for d in back if isinstance(d, Deliver)] == [PRIMARY]


def test_cancel_cancels_open_calls_and_closes_without_an_error():
    c = core()
    first = kinds(c.audio(b"ab", 0.0), OpenCall)[0].call
    assert c.cancel() == [CancelCall(first), Close()]
    assert c.event(first, SessionError("CANCELLED", ""), 0.1) == []


def test_backoff_grows_and_is_bounded():
    backoff = Backoff(RetrySettings(initial_s=0.2, max_s=1.0, jitter_s=0.1))
    delays = [backoff.delay(n) for n in range(1, 8)]
    assert 0.2 <= delays[0] <= 0.3 and 0.4 <= delays[1] <= 0.5
    assert all(d <= 1.0 for d in delays)
