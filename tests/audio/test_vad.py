"""Endpointer: synthetic frame patterns (injected VAD decisions) and real synthesized speech."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from voiced.audio.vad import (
    QUIET_RATIO,
    Endpointer,
    EndpointerSettings,
    FrameSplitter,
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    SpeechTimedOut,
    loudness,
)
from voiced.testing import mix, noise, read_pcm, silence, speech_span, tone

RATE = 16000


def pattern_frames(settings: EndpointerSettings, pattern: list[tuple[bool, float]]) -> list[bytes]:
    """Frames whose first byte says speech (1) or silence (0); the rest numbers the frame."""
    frame_bytes = settings.frame_bytes(RATE)
    frames = []
    for speech, seconds in pattern:
        for _ in range(settings.frames(seconds)):
            index = len(frames).to_bytes(4, "little")
            frames.append((b"\x01" if speech else b"\x00") + index + b"\x00" * (frame_bytes - 5))
    return frames


def run(settings: EndpointerSettings, frames: list[bytes]) -> list:
    endpointer = Endpointer(settings, RATE, is_speech=lambda frame: frame[0] == 1)
    return [event for frame in frames for event in endpointer.process(frame)]


def without_audio(events):
    return [e for e in events if not isinstance(e, SpeechAudio)]


def test_short_blips_do_not_start_speech():
    settings = EndpointerSettings()
    frames = pattern_frames(settings, [(False, 1), (True, 0.15), (False, 0.3), (True, 0.2), (False, 2)])
    assert run(settings, frames) == []


def test_speech_starts_after_start_window_and_sends_pre_roll_first():
    settings = EndpointerSettings()  # 30 ms frames: start window 10 frames, pre-roll 17
    frames = pattern_frames(settings, [(False, 2.01), (True, 1.0), (False, 1.5)])
    events = run(settings, frames)
    started = events[0]
    assert isinstance(started, SpeechStarted)
    # speech began at frame 67 (2.01 s); start needs 8 of 10 speech frames -> fires at frame 74
    assert started.audio == b"".join(frames[74 - 27 + 1 : 75])
    assert started.at_s == pytest.approx((74 - 27 + 1) * 0.03)
    assert started.at_s <= 2.01 - 0.5  # pre-roll reaches at least 0.5 s before the speech


def test_every_frame_of_the_utterance_is_delivered_once():
    settings = EndpointerSettings()
    frames = pattern_frames(settings, [(False, 1), (True, 2), (False, 0.3), (True, 1), (False, 2)])
    events = run(settings, frames)
    audio = b"".join(e.audio for e in events if isinstance(e, SpeechStarted | SpeechAudio))
    first = frames.index(events[0].audio[: settings.frame_bytes(RATE)])
    assert audio == b"".join(frames[first : first + len(audio) // settings.frame_bytes(RATE)])
    # a 0.3 s pause inside the utterance does not end it: one start, one end
    assert [type(e) for e in without_audio(events)] == [SpeechStarted, SpeechEnded]


@pytest.mark.parametrize(("preset", "seconds"), [("aggressive", 0.25), ("default", 0.7), ("relaxed", 1.25), (0.4, 0.4)])
def test_end_silence_presets(preset, seconds):
    settings = EndpointerSettings(end_silence=preset)
    frames = pattern_frames(settings, [(False, 0.6), (True, 1.5), (False, 3)])
    events = run(settings, frames)
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1
    assert ended[0].at_s == pytest.approx(0.6 + 1.5, abs=0.031)
    # the end is reported exactly when the end silence has passed: count the frames after it
    audio_frames = [e for e in events if isinstance(e, SpeechAudio)]
    end_index = frames.index(audio_frames[-1].audio)
    assert (end_index + 1) * 0.03 == pytest.approx(0.6 + 1.5 + settings.frames(seconds) * 0.03, abs=0.031)


def test_minimum_utterance_keeps_session_open_past_a_short_word():
    settings = EndpointerSettings(min_utterance_s=2.0, end_silence="aggressive")
    frames = pattern_frames(settings, [(False, 0.6), (True, 0.4), (False, 3)])
    events = run(settings, frames)
    assert isinstance(events[-1], SpeechEnded)
    # start window (10 frames) plus the streamed frames make up the minimum 2 s, not 0.4 + 0.25
    streamed = sum(isinstance(e, SpeechAudio) for e in events)
    assert (10 + streamed) * 0.03 == pytest.approx(2.0, abs=0.031)


def test_monologue_is_cut_at_maximum_and_resumes():
    settings = EndpointerSettings()
    frames = pattern_frames(settings, [(False, 0.6), (True, 25), (False, 1)])
    events = without_audio(run(settings, frames))
    assert [type(e) for e in events] == [SpeechStarted, SpeechTimedOut, SpeechStarted, SpeechEnded]
    assert events[1].duration_s == pytest.approx(15.0, abs=0.031)


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_frame_sizes_give_the_same_times(frame_ms):
    settings = EndpointerSettings(frame_ms=frame_ms)
    frames = pattern_frames(settings, [(False, 1.2), (True, 1.5), (False, 1.5)])
    events = without_audio(run(settings, frames))
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[1].at_s == pytest.approx(2.7, abs=0.031)
    assert 1.2 - events[0].at_s >= 0.5


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0.03, 4.0)), max_size=12),
    st.sampled_from(["aggressive", "default", "relaxed"]),
)
def test_any_pattern_gives_well_formed_utterances(pattern, end_silence):
    settings = EndpointerSettings(end_silence=end_silence, max_utterance_s=3.0)
    frames = pattern_frames(settings, pattern)
    events = run(settings, frames)
    marks = without_audio(events)
    # starts and ends alternate, starting with a start
    assert all(isinstance(e, SpeechStarted) == (i % 2 == 0) for i, e in enumerate(marks))
    # no utterance streams past the maximum, and no frame is delivered twice
    size, count, delivered = settings.frame_bytes(RATE), 0, []
    for e in events:
        if isinstance(e, SpeechStarted):
            count = len(e.audio) // size
            delivered += [e.audio[i : i + size] for i in range(0, len(e.audio), size)]
        elif isinstance(e, SpeechAudio):
            count += 1
            delivered.append(e.audio)
        assert count <= settings.frames(3.0) + settings.frames(settings.pre_roll_s)
    assert len(set(delivered)) == len(delivered)


def test_wrong_frame_size_and_bad_settings_are_rejected():
    endpointer = Endpointer(EndpointerSettings(), RATE, is_speech=lambda f: False)
    with pytest.raises(ValueError, match="960 bytes"):
        endpointer.process(b"\x00" * 100)
    with pytest.raises(pydantic.ValidationError):
        EndpointerSettings(end_silence=0.0)
    with pytest.raises(pydantic.ValidationError):
        EndpointerSettings(frame_ms=25)
    with pytest.raises(ValueError, match="Hz"):
        Endpointer(EndpointerSettings(), 44100)


def test_frame_splitter_keeps_remainder():
    splitter = FrameSplitter(4)
    assert list(splitter.feed(b"abcdef")) == [b"abcd"]
    assert list(splitter.feed(b"gh")) == [b"efgh"]
    assert list(splitter.feed(b"i")) == [] and splitter.remainder() == b"i"


def test_quiet_far_under_the_loudest_speech_counts_where_the_vad_still_says_speech():
    settings = EndpointerSettings()
    # a VAD that lags: anything above digital silence is speech to it
    endpointer = Endpointer(settings, RATE, is_speech=lambda frame: loudness(frame) > 100)
    events = [
        e for f in FrameSplitter(960).feed(silence(0.6, RATE) + tone(1.0, RATE, 10000)) for e in endpointer.process(f)
    ]
    assert isinstance(events[0], SpeechStarted)
    speech_end_s = endpointer.now_s
    fall = 10000 * QUIET_RATIO * 0.8  # just under the quiet line
    frames = list(FrameSplitter(960).feed(tone(0.12, RATE, int(fall))))
    for frame in frames:
        endpointer.process(frame)
    assert endpointer.quiet_s == pytest.approx(0.12)
    assert endpointer.end_if_quiet(0.15) is None  # not yet
    endpointer.process(frames[0])
    ended = endpointer.end_if_quiet(0.15)
    assert ended == SpeechEnded(at_s=pytest.approx(speech_end_s), duration_s=pytest.approx(1.0, abs=0.31))
    assert endpointer.quiet_s == 0  # listening again


def test_a_bang_before_the_speech_is_no_measure_of_its_loudness():
    endpointer = Endpointer(EndpointerSettings(), RATE, is_speech=lambda frame: loudness(frame) > 100)
    bang = tone(0.03, RATE, 30000)  # in the pre-roll, before the start window
    for frame in FrameSplitter(960).feed(silence(0.3, RATE) + bang + silence(0.3, RATE) + tone(1.0, RATE, 10000)):
        endpointer.process(frame)
    for frame in FrameSplitter(960).feed(tone(0.3, RATE, int(10000 * QUIET_RATIO * 2))):  # under the bang's line only
        endpointer.process(frame)
    assert endpointer.quiet_s == 0


def test_audio_above_the_quiet_line_counts_only_where_the_vad_says_silence():
    settings = EndpointerSettings()
    endpointer = Endpointer(settings, RATE, is_speech=lambda frame: loudness(frame) > 1000)
    for frame in FrameSplitter(960).feed(silence(0.6, RATE) + tone(1.0, RATE, 10000)):
        endpointer.process(frame)
    for frame in FrameSplitter(960).feed(tone(0.3, RATE, int(10000 * QUIET_RATIO * 3))):  # a loud floor: speech
        endpointer.process(frame)
    assert endpointer.quiet_s == 0 and endpointer.end_if_quiet(0.15) is None
    for frame in FrameSplitter(960).feed(tone(0.18, RATE, 1000)):  # louder than the line, but the VAD says silence
        endpointer.process(frame)
    assert endpointer.quiet_s == pytest.approx(0.18)
    assert endpointer.end_if_quiet(0.15) is not None


# --- real speech through webrtcvad ---------------------------------------------------------


def endpoint(pcm: bytes, settings: EndpointerSettings, rate: int = RATE) -> list:
    endpointer = Endpointer(settings, rate)
    return [e for frame in FrameSplitter(settings.frame_bytes(rate)).feed(pcm) for e in endpointer.process(frame)]


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_real_phrase_gives_one_utterance_covering_the_speech(speech, rate):
    pcm, _ = read_pcm(speech("turn on the kitchen light", "flite:slt", rate))
    pcm = silence(1.5, rate) + pcm + silence(2, rate)
    onset, offset = speech_span(pcm, rate)
    events = without_audio(endpoint(pcm, EndpointerSettings(), rate))
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[0].at_s <= onset - 0.45  # the first word is inside the pre-roll-led audio
    assert offset - 0.1 <= events[1].at_s <= offset + 0.3


def test_real_phrase_is_quiet_from_the_end_of_its_last_word(speech):
    """Over a noise floor, the quiet after a real phrase begins where its energy falls away."""
    phrase = read_pcm(speech("switch off the bedroom light", "flite:kal16"))[0]
    pcm = silence(1.0, RATE) + phrase + silence(1.0, RATE)
    pcm = mix(pcm, noise(len(pcm) / RATE / 2 + 0.1, RATE, "brownnoise", 0.005))
    offset = speech_span(pcm, RATE)[1]
    endpointer = Endpointer(EndpointerSettings(), RATE)
    ended = None
    for frame in FrameSplitter(endpointer.frame_bytes).feed(pcm):
        endpointer.process(frame)
        if endpointer.now_s > 1.5 and (ended := endpointer.end_if_quiet(0.15)) is not None:
            break
    assert ended is not None
    assert offset - 0.1 <= ended.at_s <= offset + 0.1


@pytest.mark.parametrize("background", [None, ("pinknoise", 0.05), ("brownnoise", 0.03)])
def test_utterances_separated_by_silence_and_noise(speech, background):
    def phrase(text):
        return read_pcm(speech(text, "flite:kal16"))[0]

    pcm = (
        silence(1.5, RATE)
        + phrase("what time is it")
        + silence(1.5, RATE)
        + phrase("turn off the lights")
        + silence(2.5, RATE)
        + phrase("play some music")
        + silence(2, RATE)
    )
    if background:
        # a steady noise floor (a fan, a street) under everything, as a real microphone hears it
        pcm = mix(pcm, noise(len(pcm) / RATE / 2 + 0.1, RATE, *background))
    events = without_audio(endpoint(pcm, EndpointerSettings()))
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 3
    # nothing fires on a long stretch of noise alone
    assert (
        endpoint(noise(10, RATE, "pinknoise", 0.05) + noise(10, RATE, "brownnoise", 0.03), EndpointerSettings()) == []
    )


def test_real_monologue_is_cut_at_maximum(speech):
    sentence = read_pcm(speech("the quick brown fox jumps over the lazy dog and keeps on running", "flite:awb"))[0]
    pcm = silence(0.5, RATE)
    while len(pcm) < 31 * RATE * 2:
        pcm += sentence + silence(0.2, RATE)
    events = without_audio(endpoint(pcm, EndpointerSettings()))
    timed_out = [e for e in events if isinstance(e, SpeechTimedOut)]
    assert isinstance(events[0], SpeechStarted) and events[1] == timed_out[0]
    assert timed_out[0].duration_s == pytest.approx(15.0, abs=0.031)
