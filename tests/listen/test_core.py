"""Listening core: replay audio frames and recognition results, check every decision."""

from __future__ import annotations

from voiced.audio.vad import Endpointer, EndpointerSettings
from voiced.events import FinalEvent, PartialEvent, SessionErrorEvent
from voiced.listen.core import CancelSession, Emit, FinishSession, ListeningCore, OpenSession, SendAudio

RATE = 16000
SETTINGS = EndpointerSettings()  # 30 ms frames
FRAME = SETTINGS.frame_bytes(RATE)


def frame(speech: bool, index: int, quiet: bool = False) -> bytes:
    """The first byte is the VAD's decision; speech is loud (quiet: far under it, as the tail
    of a word the VAD still takes for speech); then the frame's number."""
    loud = b"\x40" if speech and not quiet else b"\x00"
    return (b"\x01" if speech else b"\x00") + index.to_bytes(4, "little") + loud * (FRAME - 5)


class Grammar:
    """A grammar of a few sentences, each a finished command (voiced.commands.completion)."""

    def __init__(self, *sentences: str):
        self.sentences = sentences

    def finished(self, text: str) -> bool:
        return text in self.sentences

    def goes_on(self, text: str) -> bool:
        return any(sentence.startswith(text + " ") for sentence in self.sentences)


class Replay:
    """Drives a core with a frame clock: frame i arrives at now = i * 0.03 s."""

    def __init__(self, final_timeout_s: float = 2.0, completion: Grammar | None = None):
        endpointer = Endpointer(SETTINGS, RATE, is_speech=lambda f: f[0] == 1)
        self.core = ListeningCore(
            endpointer, final_timeout_s=final_timeout_s, completion=completion, complete_silence_s=0.25
        )
        self.index = 0
        self.decisions: list = []

    @property
    def now(self) -> float:
        return self.index * 0.03

    def audio(self, speech: bool, seconds: float, quiet: bool = False) -> list:
        out = []
        for _ in range(SETTINGS.frames(seconds)):
            out += self.core.feed_frame(frame(speech, self.index, quiet), self.now)
            self.index += 1
        self.decisions += out
        return out


def kinds(decisions):
    return [type(d.event).__name__ if isinstance(d, Emit) else type(d).__name__ for d in decisions]


def test_silence_sends_nothing_and_opens_nothing():
    replay = Replay()
    assert replay.audio(False, 10) == []
    assert replay.core.idle


def test_session_lifecycle_pre_roll_first_then_stream_then_half_close():
    replay = Replay()
    replay.audio(False, 2)
    opened = replay.audio(True, 1.5)
    assert kinds(opened[:2]) == ["SpeechStartedEvent", "OpenSession"]
    first_audio = opened[1].audio
    assert len(first_audio) == 27 * FRAME  # 0.51 s pre-roll + 0.3 s start window
    # speech from frame 67, start fires at its 8th frame (74): the 27 frames up to it, from 48
    assert first_audio[:FRAME] == frame(False, 48)
    assert all(isinstance(d, SendAudio) and d.session == 1 for d in opened[2:])
    ended = replay.audio(False, 1.0)
    assert kinds(ended)[-2:] == ["SpeechEndedEvent", "FinishSession"]
    assert ended[-2].event.reason == "silence"
    # nothing after the half-close, even while the final is awaited
    assert replay.audio(False, 0.2) == []
    assert replay.core.on_partial(1, "turn on", replay.now) == [Emit(PartialEvent(session=1, text="turn on"))]
    final = replay.core.on_final(1, "turn on the light", 0.9, True, replay.now)
    assert final == [Emit(FinalEvent(session=1, text="turn on the light", confidence=0.9))]
    replay.core.on_closed(1)
    assert replay.core.idle


def test_each_utterance_gets_its_own_session():
    replay = Replay()
    for _ in range(3):
        replay.audio(False, 1.5)
        replay.audio(True, 1.0)
    replay.audio(False, 1.5)
    opens = [d.session for d in replay.decisions if isinstance(d, OpenSession)]
    finishes = [d.session for d in replay.decisions if isinstance(d, FinishSession)]
    assert opens == finishes == [1, 2, 3]


def test_final_timeout_cancels_and_reports():
    replay = Replay(final_timeout_s=2.0)
    replay.audio(False, 1)
    replay.audio(True, 1)
    replay.audio(False, 1)
    deadline = replay.core.next_deadline()
    assert deadline is not None
    assert replay.core.tick(deadline - 0.01) == []
    timed_out = replay.core.tick(deadline)
    assert timed_out[0] == CancelSession(1)
    assert isinstance(timed_out[1].event, SessionErrorEvent) and timed_out[1].event.code == "DEADLINE_EXCEEDED"
    assert replay.core.idle
    # a late result of the cancelled session is ignored
    assert replay.core.on_final(1, "late", 1.0, True, replay.now) == []


def test_server_end_of_utterance_stops_streaming_early():
    replay = Replay()
    replay.audio(False, 1)
    replay.audio(True, 1)
    stopped = replay.core.on_final(1, "hello", 1.0, True, replay.now)
    assert kinds(stopped) == ["FinalEvent", "SpeechEndedEvent", "FinishSession"]
    assert stopped[1].event.reason == "server"
    # the speech that follows is not sent to the closed session; it may open a new one
    later = replay.audio(True, 1)
    assert not any(isinstance(d, SendAudio) and d.session == 1 for d in later)
    assert kinds(later)[:2] == ["SpeechStartedEvent", "OpenSession"] and later[1].session == 2


def test_session_error_while_streaming_stops_sending_and_next_utterance_opens_anew():
    replay = Replay()
    replay.audio(False, 1)
    replay.audio(True, 0.5)
    error = replay.core.on_error(1, "UNAVAILABLE", "connection refused")
    assert error == [Emit(SessionErrorEvent(session=1, code="UNAVAILABLE", details="connection refused"))]
    assert replay.audio(True, 1) == []  # rest of this utterance: nowhere to send it
    replay.audio(False, 1)
    again = replay.audio(True, 1)
    assert isinstance(again[1], OpenSession) and again[1].session == 2


def test_empty_final_is_reported_as_nothing_recognized_and_input_end_half_closes():
    replay = Replay()
    replay.audio(False, 1)
    replay.audio(True, 1)
    assert kinds(replay.core.end_of_input(replay.now)) == ["SpeechEndedEvent", "FinishSession"]
    assert replay.core.on_final(1, "  ", 0.0, True, replay.now) == [
        Emit(FinalEvent(session=1, text="", confidence=0.0))
    ]
    assert replay.core.on_closed(1) == []  # answered already: nothing more


def test_a_session_closed_without_any_final_ends_in_an_empty_final():
    replay = Replay()
    replay.audio(True, 1)
    replay.core.end_of_input(replay.now)
    assert replay.core.on_closed(1) == [Emit(FinalEvent(session=1, text="", confidence=0.0))]
    assert replay.core.idle


def test_awaiting_final_from_the_end_of_speech_until_the_session_is_answered():
    replay = Replay()
    replay.audio(True, 1)
    assert not replay.core.awaiting_final  # still streaming
    replay.core.end_of_input(replay.now)
    assert replay.core.awaiting_final
    replay.core.on_final(1, "turn on the light", 0.9, True, replay.now)
    replay.core.on_closed(1)
    assert not replay.core.awaiting_final and replay.core.idle


def test_the_final_is_awaited_from_when_the_recognizer_has_the_audio_and_while_it_answers():
    """Input read faster than real time makes a backlog at the recognizer: the final's deadline
    counts from the delivery of the session's audio, and each answer of the recognizer re-arms
    it (to any session: it answers them in the order their audio came)."""
    replay = Replay(final_timeout_s=2.0)
    replay.audio(False, 1)
    replay.audio(True, 1)
    replay.audio(False, 1)  # session 1 ended
    replay.audio(True, 1)
    replay.audio(False, 1)  # session 2 ended
    ended = replay.core.next_deadline() - replay.core.max_wait_s  # session 1's end of speech
    assert replay.core.tick(ended + 5) == []  # not yet received: no final can be expected
    replay.core.on_delivered(1, ended + 10)
    replay.core.on_delivered(2, ended + 10)
    assert replay.core.next_deadline() == ended + 12
    assert replay.core.on_partial(1, "", ended + 11.5) == []  # an unchanged hypothesis: progress all the same
    assert replay.core.next_deadline() == ended + 13.5
    replay.core.on_final(1, "turn on the light", 0.9, True, ended + 13)  # session 2 waits its turn
    replay.core.on_closed(1)
    assert replay.core.next_deadline() == ended + 15
    assert replay.core.tick(ended + 14.9) == []
    timed_out = replay.core.tick(ended + 15)
    assert timed_out[0] == CancelSession(2)
    assert timed_out[1].event.details == (
        "no final result within 2 s after the end of speech (counted from when "
        "the recognizer had all the audio and from its last answer)"
    )


def test_a_final_is_never_awaited_longer_than_the_maximum_wait():
    replay = Replay(final_timeout_s=2.0)
    replay.audio(False, 1)
    replay.audio(True, 1)
    replay.audio(False, 1)
    latest = replay.core.next_deadline()  # nothing delivered: the maximum wait
    replay.core.on_partial(1, "turn", latest - 1)  # answers before the delivery do not extend it
    assert replay.core.next_deadline() == latest
    [cancel, error] = replay.core.tick(latest)
    assert cancel == CancelSession(1) and error.event.code == "DEADLINE_EXCEEDED"
    assert error.event.details == "the recognizer did not receive the audio within 30 s after the end of speech"
    replay.audio(True, 1)
    replay.audio(False, 1)
    latest = replay.core.next_deadline()
    replay.core.on_delivered(2, latest - 3)
    replay.core.on_partial(2, "turn on", latest - 1)  # a busy recognizer: still not past the maximum
    assert replay.core.next_deadline() == latest
    assert replay.core.tick(latest)[1].event.details == "no final result within 30 s after the end of speech"


GRAMMAR = Grammar("turn on the kitchen light", "set a timer for 25 minutes", "set a timer for 20 minutes")


def sent_s(replay: Replay, session: int) -> float:
    """How much audio the session has been sent: what a recognizer up to date has heard."""
    sent = [d.audio for d in replay.decisions if isinstance(d, OpenSession | SendAudio) and d.session == session]
    return sum(map(len, sent)) / 2 / RATE


def test_a_finished_command_ends_its_session_once_the_partial_has_heard_the_short_silence():
    replay = Replay(completion=GRAMMAR)
    replay.audio(False, 1)
    replay.audio(True, 1.5)
    speech_end = replay.now
    heard = replay.core.on_partial(1, "turn on the kitchen light", replay.now, sent_s(replay, 1))
    assert heard == [Emit(PartialEvent(session=1, text="turn on the kitchen light"))]
    assert replay.audio(False, 0.24) and replay.core.streaming == 1  # 8 silent frames: not yet
    # 9 frames, 0.27 s >= 0.25 s: but the partial was read before the silence
    assert kinds(replay.audio(False, 0.03)) == ["SendAudio"]
    assert replay.core.on_partial(1, "", replay.now, sent_s(replay, 1) - 0.03) == []  # not all of it yet
    ended = replay.core.on_partial(1, "", replay.now, sent_s(replay, 1))  # the same hypothesis, later
    assert kinds(ended) == ["SpeechEndedEvent", "FinishSession"]
    assert ended[0].event.reason == "complete" and ended[0].event.audio_s == round(speech_end, 3)
    assert replay.core.awaiting_final and replay.audio(False, 1) == []


def test_the_short_silence_may_be_quiet_audio_the_vad_still_takes_for_speech():
    replay = Replay(completion=GRAMMAR)
    replay.audio(True, 1.5)
    speech_end = replay.now
    replay.audio(True, 0.24, quiet=True)
    replay.core.on_partial(1, "turn on the kitchen light", replay.now, sent_s(replay, 1))
    assert replay.core.streaming == 1  # 8 quiet frames: not yet
    replay.audio(True, 0.03, quiet=True)
    ended = replay.core.on_partial(1, "", replay.now, sent_s(replay, 1))
    assert kinds(ended) == ["SpeechEndedEvent", "FinishSession"]
    assert ended[0].event.reason == "complete" and ended[0].event.audio_s == round(speech_end, 3)


def test_a_partial_read_before_the_last_word_was_over_ends_nothing():
    """The recognizer lags: its latest partial ("... 10", read during "twenty") is a finished
    command, but it has not heard the end of the speech."""
    replay = Replay(completion=Grammar("set the fan to 10"))
    replay.audio(True, 1.2)
    early = sent_s(replay, 1)
    replay.audio(True, 0.3)
    replay.core.on_partial(1, "set the fan to 10", replay.now, early)
    replay.audio(False, 0.6)
    assert replay.core.streaming == 1


def test_a_command_that_can_go_on_waits_out_the_end_silence():
    replay = Replay(completion=GRAMMAR)
    replay.audio(True, 1.5)
    replay.audio(False, 0.3)
    replay.core.on_partial(1, "set a timer for twenty", replay.now, sent_s(replay, 1))  # "... five minutes"
    replay.audio(False, 0.3)
    assert replay.core.streaming == 1
    ended = replay.audio(False, 0.2)
    assert kinds(ended)[-2:] == ["SpeechEndedEvent", "FinishSession"] and ended[-2].event.reason == "silence"


def test_only_the_latest_partial_counts_and_speech_resets_the_short_silence():
    replay = Replay(completion=GRAMMAR)
    replay.audio(True, 1)
    replay.core.on_partial(1, "turn on the kitchen light", replay.now, sent_s(replay, 1))
    replay.core.on_partial(1, "turn on the kitchen lights in", replay.now, sent_s(replay, 1))  # it went on
    replay.audio(False, 0.5)
    replay.core.on_partial(1, "", replay.now, sent_s(replay, 1))
    assert replay.core.streaming == 1
    replay.audio(True, 0.5)
    replay.core.on_partial(1, "set a timer for 25 minutes", replay.now, sent_s(replay, 1))
    replay.audio(False, 0.15)  # the silence before the last speech does not count
    replay.core.on_partial(1, "", replay.now, sent_s(replay, 1))
    assert replay.core.streaming == 1
    replay.audio(False, 0.12)
    assert kinds(replay.core.on_partial(1, "", replay.now, sent_s(replay, 1)))[-1] == "FinishSession"


def test_without_a_grammar_what_it_heard_or_for_an_ended_session_partials_end_nothing():
    replay = Replay()  # open speech: no `finished`
    replay.audio(True, 1)
    replay.audio(False, 0.3)
    replay.core.on_partial(1, "turn on the kitchen light", replay.now, sent_s(replay, 1))
    replay.audio(False, 0.3)
    assert replay.core.streaming == 1
    replay = Replay(completion=GRAMMAR)
    replay.audio(True, 1)
    replay.audio(False, 0.3)
    replay.core.on_partial(1, "turn on the kitchen light", replay.now)  # a recognizer that does not say
    replay.audio(False, 0.3)
    assert replay.core.streaming == 1
    replay.audio(False, 0.2)  # ended on the end silence
    replay.core.on_partial(1, "turn on the kitchen light", replay.now, 10.0)  # late, of session 1
    replay.audio(True, 1)
    replay.audio(False, 0.3)
    assert replay.core.streaming == 2  # session 2 has heard no finished command


def test_a_final_that_may_go_on_after_an_early_end_runs_nothing():
    """The partial was a finished command, but wrong: what the final heard may go on (the
    speaker paused before the rest). Nothing must run rather than a shorter command."""
    replay = Replay(completion=GRAMMAR)
    replay.audio(True, 1.5)
    replay.audio(False, 0.3)
    assert kinds(replay.core.on_partial(1, "set a timer for 25 minutes", replay.now, sent_s(replay, 1)))[-1] == (
        "FinishSession"
    )
    [final] = replay.core.on_final(1, "set a timer for 20", 0.9, True, replay.now)
    assert final.event.text == "" and "'set a timer for 20', which may go on" in final.event.reason
    # a final that is itself a command nothing need follow runs, whatever the partial was
    replay.audio(True, 1.5)
    replay.audio(False, 0.3)
    replay.core.on_partial(2, "turn on the kitchen light", replay.now, sent_s(replay, 2))
    [final] = replay.core.on_final(2, "turn on the kitchen lights please", 0.9, True, replay.now)
    assert final.event.text == "turn on the kitchen lights please"
