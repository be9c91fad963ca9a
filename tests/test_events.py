"""Event sinks: JSON lines for programs, a live caption for people."""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass

import pytest

from voiced.events import (
    CaptionWriter,
    FinalEvent,
    JsonlWriter,
    OutputStream,
    PartialEvent,
    SessionErrorEvent,
    SpeechStartedEvent,
    event_dict,
    fan_out,
)


@dataclass(frozen=True)
class CommandMatched:  # the shape another part may emit: a dataclass with a `type` field
    type: str
    intent: str


def test_jsonl_one_object_per_event_with_type_and_timestamp():
    out = io.StringIO()
    emit = JsonlWriter(out, clock=lambda: 1700000000.123456)
    emit(SpeechStartedEvent(session=1, audio_s=0.51, pre_roll_s=0.81))
    emit(PartialEvent(session=1, text="включи свет"))
    emit(FinalEvent(session=1, text="turn on the light", confidence=0.9))
    emit(CommandMatched(type="command", intent="LightOn"))
    emit({"type": "action_finished", "ok": True})
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in records] == ["speech_started", "partial", "final", "command", "action_finished"]
    assert records[0] == {
        "ts": 1700000000.123,
        "type": "speech_started",
        "session": 1,
        "audio_s": 0.51,
        "pre_roll_s": 0.81,
    }
    assert records[1]["text"] == "включи свет"  # not \\u-escaped
    assert "включи" in out.getvalue()


def test_jsonl_lines_stay_whole_under_concurrent_emitters():
    out = io.StringIO()
    emit = JsonlWriter(out)
    threads = [
        threading.Thread(target=lambda n=n: [emit(PartialEvent(session=n, text="x" * 500)) for _ in range(200)])
        for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1600 and all(json.loads(line)["text"] == "x" * 500 for line in lines)


def test_caption_on_a_terminal_rewrites_one_line_then_prints_the_final():
    out = io.StringIO()
    emit = CaptionWriter(out, live=True)
    emit(PartialEvent(session=1, text="turn on the"))
    emit(PartialEvent(session=1, text="turn"))
    emit(FinalEvent(session=1, text="turn on the light", confidence=1.0))
    emit(SessionErrorEvent(session=2, code="UNAVAILABLE", details="down"))
    text = out.getvalue()
    assert text.startswith("\r… turn on the\r… turn       \r")  # the shorter caption covers the longer
    lines = text.split("\n")
    assert lines[0].endswith("\rturn on the light")  # caption erased, final on its own line
    assert lines[1].startswith("[session_error]") and '"code": "UNAVAILABLE"' in lines[1]


def test_caption_without_terminal_has_no_carriage_returns():
    out = io.StringIO()  # not a TTY
    emit = CaptionWriter(out)
    emit(PartialEvent(session=1, text="turn on"))
    emit(FinalEvent(session=1, text="turn on the light", confidence=1.0))
    assert out.getvalue() == "turn on the light\n"


def test_fan_out_and_rejects_non_events():
    seen_a, seen_b = [], []
    fan_out(seen_a.append, seen_b.append)(PartialEvent(session=1, text="a"))
    assert seen_a == seen_b == [PartialEvent(session=1, text="a")]
    with pytest.raises(TypeError):
        event_dict("not an event")


def test_timeline_log_times_each_utterances_milestones_from_its_start(caplog):
    import logging

    from voiced.events import TimelineLog

    timeline = TimelineLog(logging.getLogger("timeline"))
    with caplog.at_level(logging.INFO, logger="timeline"):
        for record in [
            {"type": "speech_started", "session": 1, "ts": 100.0},
            {"type": "partial", "session": 1, "ts": 100.3, "text": "turn"},
            {"type": "partial", "session": 1, "ts": 100.5, "text": "turn on"},
            {"type": "speech_ended", "session": 1, "ts": 101.6},
            {"type": "final", "session": 1, "ts": 101.9, "text": "turn on the light"},
            {"type": "command_matched", "session": 1, "ts": 101.9, "intent": "LightOn"},
            {"type": "action_finished", "session": 1, "ts": 102.2, "intent": "LightOn", "action": "mqtt"},
        ]:
            timeline(record)
    assert caplog.messages == [
        "session 1: speech_started +0.00 s",
        "session 1: partial +0.30 s 'turn'",
        "session 1: speech_ended +1.60 s",
        "session 1: final +1.90 s 'turn on the light'",
        "session 1: command_matched +1.90 s 'LightOn'",
        "session 1: action_finished +2.20 s 'mqtt'",
    ]


def test_a_failing_sink_is_isolated_from_the_others(caplog):
    def broken(event):
        raise BrokenPipeError(32, "Broken pipe")

    seen = []
    emit = fan_out(broken, seen.append)
    emit(PartialEvent(session=1, text="a"))
    emit(PartialEvent(session=1, text="b"))
    assert [event.text for event in seen] == ["a", "b"]
    assert caplog.text.count("failed (BrokenPipeError") == 1  # said once, not per event


def test_an_output_whose_reader_left_is_dropped_quietly(caplog):
    """stdout piped to `head -1`: after the reader leaves, writes go nowhere, and the real
    descriptor is pointed at /dev/null so nothing fails at exit either."""
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    output = OutputStream(stream)
    writer = JsonlWriter(output)
    writer(PartialEvent(session=1, text="first"))
    with os.fdopen(read_fd) as reader:
        assert json.loads(reader.readline())["text"] == "first"
    for text in ("second", "third"):  # the pipe has no reader now
        writer(PartialEvent(session=1, text=text))
    stream.write("x" * 100_000)
    stream.flush()  # the descriptor goes to /dev/null: no BrokenPipeError at exit
    stream.close()
    assert caplog.text.count("event output closed") == 1
