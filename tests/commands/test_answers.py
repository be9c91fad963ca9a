"""voiced's own answers to a question asked back join the commands of the languages that have them."""

from __future__ import annotations

import pytest
import yaml

from voiced.commands.answers import NO, YES
from voiced.commands.config import CommandsSettings, ConfirmSettings
from voiced.commands.loading import load_commands
from voiced.config.loader import ConfigError


def commands_file(tmp_path, data: dict):
    path = tmp_path / "commands.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_the_answers_join_the_languages_that_have_them_when_asking_is_on(tmp_path):
    path = commands_file(tmp_path, {"commands": {"Stop": {"sentences": {"ru": ["стоп"], "en": ["stop"]}}}})
    commands = load_commands([path])
    said = ("да", "да, верно", "нет", "не надо", "нет, не надо")
    assert [commands.match(text, "ru").intent for text in said] == [YES, YES, NO, NO, NO]
    assert commands.match("yes", "en") is None  # English has no answers
    assert commands.match("стоп", "ru").intent == "Stop" and commands.languages == ["en", "ru"]
    off = load_commands([path], CommandsSettings(confirm=ConfirmSettings(enabled=False)))
    assert off.match("да", "ru") is None and set(off.commands) == {"Stop"}


def test_an_answer_needs_no_wake_name_but_a_command_still_does(tmp_path):
    path = commands_file(
        tmp_path,
        {"languages": {"ru": {"wake_names": ["алиса"]}}, "commands": {"Stop": {"sentences": {"ru": ["стоп"]}}}},
    )
    commands = load_commands([path], CommandsSettings(require_wake_name=True))
    assert commands.match("да", "ru").intent == YES
    assert commands.match("стоп", "ru") is None and commands.match("алиса стоп", "ru").intent == "Stop"
    assert not any("voiced." in warning.message for warning in commands.warnings)  # no template of the file


def test_a_command_file_cannot_take_an_answers_name(tmp_path):
    path = commands_file(tmp_path, {"commands": {YES: {"sentences": {"ru": ["ага"]}}}})
    with pytest.raises(ConfigError) as error:
        load_commands([path])
    assert str(error.value) == f"{path}:3:5: the command name 'voiced.yes' is voiced's own (answers)"
