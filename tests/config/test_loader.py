"""Config files are untrusted input: bounded reading, every problem as file:line:col, never a
hang or a traceback. Real files of each hostile kind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voiced.config.loader import MAX_FILE_BYTES, ConfigError, read_yaml
from voiced.settings import load_settings


def problems_of(path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    return [str(problem) for problem in caught.value.problems]


def billion_laughs() -> str:
    """Ten levels of ten aliases each: 10**10 nodes once expanded, from under 1 kB of text."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        (b"audio:\n  device: \xff\xfeUSB\n", ":2:11:", "not UTF-8 text: it cannot be decoded here"),
        (b"audio:\n  device: mic\x07\n", ":2:14:", "character #x0007 is not allowed"),
        (b"x: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", ":1:", "nested more than 64 levels deep"),
        (billion_laughs().encode(), ":5:", "more than 100000 nodes (aliases expanded)"),
        (b"a: &a [x, *a]\n", ":1:11:", "alias *a refers to a node that contains it"),
        (b"a: " + b"x" * (MAX_FILE_BYTES + 1), ":1:1:", f"larger than {MAX_FILE_BYTES} bytes"),
    ],
)
def test_hostile_content_is_a_located_error(tmp_path, content, where, message):
    path = tmp_path / "voiced.yaml"
    path.write_bytes(content)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}{where}") and message in problem, problem


def test_merge_keys_within_the_limits_still_work(tmp_path):
    path = tmp_path / "voiced.yaml"
    path.write_text("base: &base {aggressiveness: 3, frame_ms: 20}\nendpointing:\n  <<: *base\n  frame_ms: 30\n")
    assert read_yaml(path).data["endpointing"] == {"aggressiveness": 3, "frame_ms": 30}


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    assert problems_of(fifo) == [
        f"{fifo}:1:1: is not a regular file (a FIFO, device or socket): not read as a YAML file"
    ]
    assert problems_of("/dev/zero")[0].startswith("/dev/zero:1:1: is not a regular file")  # endless
    assert problems_of(directory) == [f"{directory}:1:1: is a directory, not a YAML file"]
    assert problems_of(tmp_path / "absent.yaml")[0].endswith("cannot read the YAML file: No such file or directory")


def test_a_runaway_quote_is_reported_where_it_starts(tmp_path):
    """PyYAML notices a missing closing quote where the value finally ends, lines below."""
    path = tmp_path / "voiced.yaml"
    path.write_text(
        'commands:\n  A:\n    sentences:\n      en: ["turn on the light]\n    actions: []\n'
        '  B:\n    sentences:\n      en: [x]\n    actions:\n      - {type: say, text: "hi"}\n'
    )
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4:12: YAML: this value runs on to line 10 (a closing quote missing?)")


def test_a_missing_colon_is_reported_on_its_line(tmp_path):
    path = tmp_path / "voiced.yaml"
    path.write_text("audio:\n  device null\n  sample_rate: 16000\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2:3: YAML: this value runs on to line 3 (a ':' missing")


def test_a_union_field_gets_one_message_without_pydantic_internals(tmp_path):
    path = tmp_path / "voiced.yaml"
    path.write_text("endpointing:\n  end_silence: fast\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [problem] = caught.value.problems
    assert str(problem) == (
        f"{path}:2:16: endpointing.end_silence: Input should be 'aggressive', 'default' or "
        "'relaxed'; or a valid number, unable to parse string as a number"
    )
    path.write_text("endpointing:\n  end_silence: 30\n")
    with pytest.raises(ConfigError, match=r":2:16: endpointing.end_silence: end_silence seconds must be in \(0, 10\]$"):
        load_settings(path)


def test_the_limits_leave_real_configs_alone():
    root = Path(__file__).resolve().parents[2]
    for path in (root / "config" / "voiced.yaml", root / "config" / "commands.yaml"):
        assert read_yaml(path).data
