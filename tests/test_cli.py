"""The command line: every subcommand reaches a handler that exists (they are imported by
name, only when chosen, so a moved function would otherwise fail only when that command runs)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from voiced.cli import build_parser


def subcommands() -> dict[str, str]:
    parser = build_parser()
    [sub] = [action for action in parser._actions if action.dest == "command"]
    return {name: choice.get_default("handler") for name, choice in sub.choices.items()}


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_each_subcommand_names_a_handler_that_exists(command):
    module_name, _, function_name = subcommands()[command].partition(":")
    assert callable(getattr(importlib.import_module(module_name), function_name))


def test_help_lists_every_subcommand_without_loading_any_engine():
    child = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voiced", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0
    for command in subcommands():
        assert command in child.stdout
    imported = {line.split("|")[-1].strip() for line in child.stderr.splitlines() if "|" in line}
    assert not {"grpc", "pocketsphinx", "ctranslate2", "numpy"} & imported
