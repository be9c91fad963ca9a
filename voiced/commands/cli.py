"""`voiced check-config` and `voiced match`."""

from __future__ import annotations

import json
import sys
from typing import Any

from voiced.actions.config import ActionsSettings
from voiced.commands.loading import load_commands, load_configured
from voiced.commands.matching import CommandSet
from voiced.yamlconfig import ConfigError


def _load(args) -> tuple[CommandSet, ActionsSettings, str]:
    """The commands (--commands, else those the daemon config names), the actions settings and
    the recognition language of the daemon config (defaults without --config)."""
    from voiced.settings import load_settings  # the daemon's full model: only when asked for

    settings = load_settings(getattr(args, "config", None))
    if args.commands:
        command_set = load_commands(args.commands, settings.commands)
    else:
        command_set = load_configured(settings.commands) or CommandSet([], settings.commands)
    return command_set, settings.actions, settings.recognition.language


def check_config_main(args) -> int:
    try:
        command_set, _, _ = _load(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    for warning in command_set.warnings:
        print(warning, file=sys.stderr)
    languages = ", ".join(command_set.languages)
    warned = f", {len(command_set.warnings)} warnings" if command_set.warnings else ""
    print(f"OK: {len(command_set.commands)} commands ({languages}){warned}")
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
