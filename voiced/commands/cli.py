"""`voiced check-config` and `voiced match`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from voiced.actions.config import ActionsSettings
from voiced.commands.config import CommandsSettings
from voiced.commands.loading import load_commands
from voiced.commands.matching import CommandSet
from voiced.yamlconfig import ConfigError


def _sections(config: str | None) -> tuple[CommandsSettings, ActionsSettings, str]:
    """The commands/actions sections and recognition language of the daemon YAML (or defaults).
    Relative command paths in a config file are relative to that file's directory."""
    if config is None:
        return CommandsSettings(), ActionsSettings(), "en-US"
    from voiced.settings import load_settings  # the daemon's full model: only when asked for

    settings = load_settings(config)
    commands: CommandsSettings = getattr(settings, "commands", CommandsSettings())
    actions: ActionsSettings = getattr(settings, "actions", ActionsSettings())
    base = Path(config).parent
    files = [path if path.is_absolute() else base / path for path in commands.files]
    return commands.model_copy(update={"files": files}), actions, settings.recognition.language


def _load(args) -> tuple[CommandSet, ActionsSettings, str]:
    commands, actions, language = _sections(getattr(args, "config", None))
    paths = args.commands if args.commands else commands.files
    return load_commands(paths, commands), actions, language


def check_config_main(args) -> int:
    try:
        command_set, _, _ = _load(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    languages = ", ".join(command_set.languages)
    print(f"OK: {len(command_set.commands)} commands ({languages})")
    return 0


def _describe_action(action) -> dict[str, Any]:
    return action.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def match_main(args) -> int:
    try:
        command_set, actions_settings, language = _load(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    language = args.language or language
    match = command_set.match(args.text, language)
    if match is None:
        print("no command matches", file=sys.stderr)
        return 2
    print(json.dumps(match.to_dict() | {"actions": [_describe_action(a) for a in match.actions]},
                     ensure_ascii=False, indent=2))
    if args.run:
        from voiced.actions.runner import ActionRunner
        from voiced.events import JsonlWriter

        runner = ActionRunner(actions_settings, JsonlWriter(sys.stdout))
        future = runner.dispatch(match)
        if future is not None:
            future.result()
        runner.shutdown(timeout=5)
    return 0
