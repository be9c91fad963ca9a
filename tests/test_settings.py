"""The daemon's YAML: every section in one file, defaults that work, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiced.commands import load_commands
from voiced.config.loader import ConfigError
from voiced.listen.recognizers import with_commands
from voiced.settings import DaemonSettings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "voiced.yaml"


def test_no_file_gives_working_defaults():
    settings = load_settings(None)
    assert settings == DaemonSettings()
    assert settings.audio.sample_rate == 16000 and settings.audio.device is None
    assert settings.endpointing.end_silence_s == 0.7 and settings.endpointing.pre_roll_s >= 0.5


def test_shipped_example_config_loads():
    settings = load_settings(EXAMPLE)
    assert settings.endpointing.end_silence == "default"


def test_sections_are_read(tmp_path):
    path = tmp_path / "voiced.yaml"
    path.write_text(
        "audio:\n  device: USB\n  sample_rate: 48000\n  debug_recording:\n    directory: /tmp/rec\n    max_files: 5\n"
        "endpointing:\n  end_silence: relaxed\n  aggressiveness: 3\n  early_on_complete: false\n"
        "  complete_silence_s: 0.2\n"
    )
    settings = load_settings(path)
    assert settings.audio.device == "USB" and settings.audio.sample_rate == 48000
    assert settings.audio.debug_recording.max_files == 5
    assert settings.endpointing.end_silence_s == 1.25
    assert not settings.endpointing.early_on_complete and settings.endpointing.complete_silence_s == 0.2
    path.write_text("audio:\n  device: 3\n")
    assert load_settings(path).audio.device == 3


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("endpointing:\n  end_silence: slow\n", ":2:16:", "end_silence"),
        ("endpointing:\n  complete_silence_s: 0\n", ":2:23:", "complete_silence_s"),
        ("audio:\n  sample_rate: 44100\n", ":2:16:", "sample_rate"),
        ("audio:\n  sample_rate: 16000\nmicrophone: {}\n", ":3:13:", "microphone"),
        ("endpointing:\n  frame_ms: [\n", ":3:1:", "YAML"),
    ],
)
def test_errors_are_located(tmp_path, text, where, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(str(path) + where) and words in message


def test_command_files_are_relative_to_the_config_and_the_grammar_is_asked_for(tmp_path):
    path = tmp_path / "voiced.yaml"
    path.write_text(
        "commands:\n  files: [cmds, /abs/x.yaml]\n  local_grammar: {rejection_margin: 0.8}\n"
        "actions:\n  max_concurrent: 3\n"
    )
    settings = load_settings(path)
    assert settings.commands.files == [tmp_path / "cmds", Path("/abs/x.yaml")]
    assert settings.actions.max_concurrent == 3
    commands = load_commands(["config/commands.yaml"])
    chosen = with_commands(settings, commands)  # the local engine, recognition.model left out
    assert chosen.recognition.model == "commands"
    assert chosen.server.models["commands"].rejection_margin == 0.8
    assert chosen.server.models["commands"].language == "en-US"
    path.write_text("recognition:\n  model: general\n")  # the open LM, kept on purpose
    assert with_commands(load_settings(path), commands).recognition.model == "general"
    # what no command matched is for Home Assistant: with the pocketsphinx engine the open LM,
    # unless the commands model is named; the Whisper engine reports what it heard, so it stays
    home_assistant = "home_assistant: {url: 'http://ha:8123', token: {env: HA_TOKEN}}\n"
    pocketsphinx = "commands:\n  local_grammar: {engine: pocketsphinx}\n"
    path.write_text(home_assistant + pocketsphinx)
    assert with_commands(load_settings(path), commands).recognition.model == "general"
    path.write_text(home_assistant + pocketsphinx + "recognition:\n  model: commands\n")
    assert with_commands(load_settings(path), commands).recognition.model == "commands"
    path.write_text(home_assistant + "commands:\n  local_grammar: {engine: whisper}\n")
    assert with_commands(load_settings(path), commands).recognition.model == "commands"
    path.write_text("recognition:\n  endpoint: stt.api.cloud.yandex.net:443\n")
    assert "commands" not in with_commands(load_settings(path), commands).server.models
    path.write_text("commands:\n  local_grammar: {rejection_margin: -1}\n")
    with pytest.raises(ConfigError, match=r":2:37: commands.local_grammar.rejection_margin"):
        load_settings(path)


def test_the_default_voice_speaks_the_recognition_language(tmp_path):
    """A Russian daemon asks its questions in Russian with no say_command of its own; one given
    is kept as it is."""
    russian = tmp_path / "ru.yaml"
    russian.write_text("recognition:\n  language: ru-RU\nactions:\n  max_concurrent: 3\n")
    assert load_settings(russian).actions.say_command == ["espeak-ng", "-v", "ru", "--stdin", "--stdout"]
    assert load_settings(russian).actions.max_concurrent == 3
    given = tmp_path / "given.yaml"
    given.write_text("recognition:\n  language: ru-RU\nactions:\n  say_command: [flite, -o, /dev/stdout]\n")
    assert load_settings(given).actions.say_command == ["flite", "-o", "/dev/stdout"]
    assert DaemonSettings().actions.say_command == ["espeak-ng", "--stdin", "--stdout"]
