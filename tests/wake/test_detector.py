"""Wake word: real synthesized speech through the real microWakeWord model, and the pure
core's rules (threshold, refractory period, peak, phrase end) with scripted scores."""

from __future__ import annotations

import pytest

from tests.listen.test_core import Grammar
from voiced.audio.vad import EndpointerSettings, SpeechAudio, SpeechEnded, SpeechStarted
from voiced.listen.core import Emit, ListeningCore, OpenSession, SendAudio
from voiced.testing import mix, noise, read_pcm, silence, trimmed
from voiced.wake.detector import WakeDetected, WakeDetector
from voiced.wake.engines import load_scorer
from voiced.wake.gate import WakeTimedOut, WakeWordEndpointer, wake_word_endpointer
from voiced.wake.settings import WakeSettings

RATE = 16000
ENDPOINTING = EndpointerSettings()
FRAME = ENDPOINTING.frame_bytes(RATE)
COMMAND = "turn on the kitchen light"


@pytest.fixture(scope="module")
def say(speech):
    def make(text: str, voice: str) -> bytes:
        return trimmed(read_pcm(speech(text, voice))[0], RATE)

    return make


def over_noise(*parts: bytes) -> bytes:
    pcm = b"".join(parts)
    return mix(pcm, noise(len(pcm) / 2 / RATE + 1, RATE, "pinknoise", 0.008))


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / RATE


def feed(target, pcm: bytes) -> list:
    return [event for i in range(0, len(pcm) - FRAME + 1, FRAME) for event in target.process(pcm[i : i + FRAME])]


def wake(**changes) -> WakeSettings:
    return WakeSettings(mode="wake_word", model="alexa", **changes)


@pytest.mark.parametrize("voice", ["flite:kal16", "flite:slt", "flite:rms"])
@pytest.mark.parametrize("pause_s", [0.15, 0.4])
def test_same_breath_the_session_starts_where_the_wake_phrase_ended(say, voice, pause_s):
    lead, wake_pcm, command = silence(1.0, RATE), say("alexa", voice), say(COMMAND, voice)
    pcm = over_noise(lead, wake_pcm, silence(pause_s, RATE), command, silence(1.5, RATE))
    wake_end = seconds(lead + wake_pcm)
    command_start = wake_end + pause_s
    events = feed(wake_word_endpointer(wake(), ENDPOINTING, RATE), pcm)
    detected = [e for e in events if isinstance(e, WakeDetected)]
    assert len(detected) == 1
    # the phrase end: not before the phrase's last sounds, never into the command
    assert wake_end - 0.1 <= detected[0].phrase_end_s <= command_start + 0.03
    assert detected[0].at_s >= wake_end and detected[0].model == "alexa"
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(started) == 1 and started[0].at_s == detected[0].phrase_end_s
    # the session's audio is the command alone: from the phrase's end to the end of speech
    audio = started[0].audio + b"".join(e.audio for e in events if isinstance(e, SpeechAudio))
    assert seconds(audio) >= seconds(command) - 0.1
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1 and abs(ended[0].at_s - seconds(lead + wake_pcm) - pause_s - seconds(command)) < 0.35


def test_the_same_command_without_the_wake_phrase_opens_nothing(say):
    pcm = over_noise(
        silence(1.0, RATE),
        say(COMMAND, "flite:kal16"),
        silence(1.0, RATE),
        say("what time is it", "flite:slt"),
        silence(1.0, RATE),
    )
    listening = wake_word_endpointer(wake(), ENDPOINTING, RATE)
    assert feed(listening, pcm) == []
    assert listening.state == "wake"


def test_after_a_prompt_the_command_that_follows_opens_the_session(say):
    lead, wake_pcm, quiet = silence(1.0, RATE), say("alexa", "flite:slt"), silence(1.5, RATE)
    pcm = over_noise(lead, wake_pcm, quiet, say(COMMAND, "flite:slt"), silence(1.5, RATE))
    events = feed(wake_word_endpointer(wake(), ENDPOINTING, RATE), pcm)
    kinds = [type(e) for e in events if not isinstance(e, SpeechAudio)]
    assert kinds == [WakeDetected, SpeechStarted, SpeechEnded]
    started = next(e for e in events if isinstance(e, SpeechStarted))
    # the pre-roll reaches back into the quiet, not into the wake phrase
    assert seconds(lead + wake_pcm) <= started.at_s < seconds(lead + wake_pcm + quiet)


def test_no_command_in_time_ends_the_wait_and_the_name_works_again(say):
    lead, wake_pcm = silence(1.0, RATE), say("alexa", "flite:kal16")
    pcm = over_noise(
        lead,
        wake_pcm,
        silence(4.0, RATE),
        wake_pcm,
        silence(0.3, RATE),
        say(COMMAND, "flite:kal16"),
        silence(1.5, RATE),
    )
    listening = wake_word_endpointer(wake(command_timeout_s=2.0), ENDPOINTING, RATE)
    events = [e for e in feed(listening, pcm) if not isinstance(e, SpeechAudio)]
    assert [type(e) for e in events] == [WakeDetected, WakeTimedOut, WakeDetected, SpeechStarted, SpeechEnded]
    first, timed_out = events[0], events[1]
    assert timed_out.waited_s == pytest.approx(2.0, abs=0.031)
    assert timed_out.at_s == pytest.approx(first.at_s + 2.0, abs=0.031)


def test_a_question_asked_back_lets_its_answer_in_without_the_wake_word(say):
    """await_answer opens the gate as the wake word would, for its own time: speech within it
    starts a session with no wake word; after it, the same speech is not heard."""
    answer = say("yes", "flite:rms")
    listening = wake_word_endpointer(wake(command_timeout_s=5.0), ENDPOINTING, RATE)
    feed(listening, over_noise(silence(1.0, RATE)))
    listening.await_answer(2.0)
    events = [
        e
        for e in feed(listening, over_noise(silence(0.5, RATE), answer, silence(1.5, RATE)))
        if not isinstance(e, SpeechAudio)
    ]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    # in real audio time: its pre-roll reaches back no further than where the wait began
    assert 1.0 - 0.031 <= events[0].at_s <= 1.5
    listening.await_answer(1.0)
    events = [
        e
        for e in feed(listening, over_noise(silence(1.2, RATE), answer, silence(1.5, RATE)))
        if not isinstance(e, SpeechAudio)
    ]
    assert [type(e) for e in events] == [WakeTimedOut]
    assert events[0].waited_s == pytest.approx(1.0, abs=0.031)


def test_the_listening_core_opens_a_session_only_on_the_wake_word(say):
    lead, wake_pcm, pause = silence(1.0, RATE), say("alexa", "flite:rms"), silence(0.2, RATE)
    chatter = say(COMMAND, "flite:awb")
    pcm = over_noise(lead, chatter, silence(1.0, RATE), wake_pcm, pause, say(COMMAND, "flite:rms"), silence(1.5, RATE))
    core = ListeningCore(wake_word_endpointer(wake(), ENDPOINTING, RATE))
    decisions = [d for i in range(0, len(pcm) - FRAME + 1, FRAME) for d in core.feed_frame(pcm[i : i + FRAME], now=0.0)]
    opened = [d for d in decisions if isinstance(d, OpenSession)]
    assert len(opened) == 1
    wake_end = seconds(lead + chatter + silence(1.0, RATE) + wake_pcm)
    started = next(d.event for d in decisions if getattr(d, "event", None) and d.event.type == "speech_started")
    assert wake_end - 0.1 <= started.audio_s <= wake_end + seconds(pause) + 0.03


def test_a_finished_command_after_the_wake_word_ends_early_and_the_name_listens_again(say):
    command = over_noise(silence(1.0, RATE), say("alexa", "flite:rms"), silence(0.2, RATE), say(COMMAND, "flite:rms"))
    after = over_noise(silence(0.6, RATE))  # shorter than the end silence (0.7 s)
    core = ListeningCore(wake_word_endpointer(wake(), ENDPOINTING, RATE), completion=Grammar(COMMAND))
    sent = 0  # bytes: a recognizer that keeps up has heard them all
    ended = []
    for i, pcm in enumerate([command, after]):
        for start in range(0, len(pcm) - FRAME + 1, FRAME):
            decisions = core.feed_frame(pcm[start : start + FRAME], now=0.0)
            sent += sum(len(d.audio) for d in decisions if isinstance(d, OpenSession | SendAudio))
            if i == 1:  # the hypothesis, unchanged, has heard all of it
                decisions += core.on_partial(1, "", now=0.0, audio_s=sent / 2 / RATE)
            ended += [d.event for d in decisions if isinstance(d, Emit) and d.event.type == "speech_ended"]
        if i == 0:
            assert core.streaming == 1
            core.on_partial(1, COMMAND, now=0.0, audio_s=sent / 2 / RATE)
    assert [event.reason for event in ended] == ["complete"]
    assert core.endpointer.state == "wake"


def test_the_gate_never_runs_the_model_on_silence_and_detects_the_same(say):
    lead, wake_pcm = silence(2.0, RATE), say("alexa", "flite:kal16")
    pcm = over_noise(lead, wake_pcm, silence(1.5, RATE))
    results = {}
    for gate in (True, False):
        detector = WakeDetector(wake(vad_gate=gate), ENDPOINTING, load_scorer(wake().wake_model))
        results[gate] = (feed(detector, pcm), detector.frames_scored)
        idle = WakeDetector(wake(vad_gate=gate), ENDPOINTING, detector.scorer)
        feed(idle, silence(3.0, RATE))
        assert idle.frames_scored == (0 if gate else 100)
    (gated, gated_frames), (ungated, all_frames) = results[True], results[False]
    assert len(gated) == len(ungated) == 1
    assert abs(gated[0].phrase_end_s - ungated[0].phrase_end_s) <= 0.06
    assert gated_frames < all_frames


# --- the rules, with scripted scores and VAD flags ---------------------------------------


class ScriptedScorer:
    """Scores given per frame; frames carry their VAD flag in their first byte."""

    name, threshold, detection_lag_s = "scripted", 0.5, 0.09

    def __init__(self, per_frame: list[float]):
        self.per_frame, self.next, self.resets = per_frame, 0, 0

    def scores(self, pcm: bytes) -> list[float]:
        count = len(pcm) // FRAME
        out = self.per_frame[self.next : self.next + count]
        self.next += count
        return out

    def reset(self) -> None:
        self.resets += 1


def scripted(flags: str, scores: list[float], **changes) -> tuple[list[WakeDetected], ScriptedScorer]:
    """flags: one character per 30 ms frame, '#' speech, '.' not."""
    scorer = ScriptedScorer(scores)
    detector = WakeDetector(wake(vad_gate=False, **changes), ENDPOINTING, scorer, is_speech=lambda frame: frame[0] == 1)
    frames = [(b"\x01" if flag == "#" else b"\x00") * FRAME for flag in flags]
    return [event for frame in frames for event in detector.process(frame)], scorer


def test_reported_at_the_peak_with_the_phrase_ending_at_the_pause_before_it():
    flags = "##########....####"
    scores = [0.0] * 9 + [0.6, 0.8, 0.9, 0.7] + [0.0] * 5
    (event,), scorer = scripted(flags, scores)
    assert event.score == 0.9 and event.at_s == pytest.approx(13 * 0.03)
    assert event.phrase_end_s == pytest.approx(10 * 0.03)  # where the pause began
    assert len(event.command_audio) == 3 * FRAME and scorer.resets == 1


def test_without_a_pause_the_phrase_ends_the_lag_before_the_peak():
    (event,), _ = scripted("#" * 20, [0.0] * 10 + [0.7, 0.95, 0.6] + [0.0] * 7)
    assert event.phrase_end_s == pytest.approx((12 - 3) * 0.03)  # peak frame 12, lag 3 frames


def test_a_score_still_rising_is_reported_after_the_peak_wait():
    (event,), _ = scripted("#" * 30, [0.0] * 5 + [0.6 + i * 0.01 for i in range(25)])
    assert event.at_s == pytest.approx((5 + 1 + 10) * 0.03)  # 0.3 s after the crossing


@pytest.mark.parametrize("refractory_s, expected", [(3.0, 1), (0.5, 2)])
def test_refractory_period(refractory_s, expected):
    peak = [0.6, 0.9, 0.1]
    events, _ = scripted("#" * 60, [0.0] * 5 + peak + [0.0] * 30 + peak + [0.0] * 19, refractory_s=refractory_s)
    assert len(events) == expected


def test_below_threshold_nothing_is_detected():
    assert scripted("#" * 20, [0.49] * 20)[0] == []
    assert scripted("#" * 20, [0.2] * 20, threshold=0.1)[0] != []


def test_the_gate_and_the_endpointer_take_the_same_frames():
    with pytest.raises(ValueError, match="same frames"):
        WakeWordEndpointer(
            wake_word_endpointer(wake(), EndpointerSettings(frame_ms=20), RATE).endpointer,
            WakeDetector(wake(), ENDPOINTING, ScriptedScorer([])),
            5.0,
        )
