"""Which sessions may end early on a finished command: those of the local commands model."""

from __future__ import annotations

import pytest

from voiced.commands import load_commands
from voiced.listen.recognizers import command_completion, with_commands
from voiced.settings import DaemonSettings

COMMANDS = """
commands:
  LightOn:
    sentences: {en: ["turn on the light"]}
"""


@pytest.fixture
def commands(tmp_path):
    (tmp_path / "commands.yaml").write_text(COMMANDS)
    return load_commands([tmp_path / "commands.yaml"])


def finished_for(commands, **sections):
    settings = with_commands(DaemonSettings.model_validate(sections), commands)
    return command_completion(settings, commands)


def test_the_local_commands_model_ends_sessions_early(commands):
    completion = finished_for(commands)
    assert completion is not None and completion.finished("turn on the light")
    assert not completion.finished("turn on the") and completion.goes_on("turn on the")


@pytest.mark.parametrize(
    "sections",
    [
        {"recognition": {"model": "general"}},  # open speech: any words may follow
        {"recognition": {"endpoint": "stt.api.cloud.yandex.net:443"}},  # the cloud: its own end_of_utterance
        {"recognition": {"language": "ru-RU"}},  # no commands in that language: the open model
        {"endpointing": {"early_on_complete": False}},
    ],
)
def test_open_speech_the_cloud_and_the_setting_off_wait_out_the_end_silence(commands, sections):
    assert finished_for(commands, **sections) is None


def test_without_commands_nothing_ends_early():
    assert command_completion(DaemonSettings(), None) is None
