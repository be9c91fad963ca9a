"""`voiced check-config` and `voiced match`: the daemon's own validation (voiced.validation)
of a configuration and its command files, and one sentence matched against them."""

from __future__ import annotations

import json
import sys
from typing import Any

from voiced.config.loader import ConfigError
from voiced.settings import find_config
from voiced.validation import load_checked


def _load(args):
    """The checked config (the --config search, --commands instead of its command files): the
    very validation `voiced run` does (voiced.validation). None after printing the errors."""

    choice = find_config(getattr(args, "config", None))
    print(f"config: {choice.describe()}", file=sys.stderr)
    try:
        checked = load_checked(choice, args.commands)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    for warning in checked.warnings:
        print(warning, file=sys.stderr)
    return checked


def check_config_main(args) -> int:
    checked = _load(args)
    if checked is None:
        return 1
    print(f"OK: {checked.describe_commands()}")
    return 0


def _describe_action(action) -> dict[str, Any]:
    return action.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def match_main(args) -> int:
    checked = _load(args)
    if checked is None:
        return 1
    from voiced.events import OutputStream

    language = args.language or checked.settings.recognition.language
    match = checked.commands.match(args.text, language) if checked.commands else None
    if match is None:
        print("no command matches", file=sys.stderr)
        return 2
    output = OutputStream(sys.stdout)  # `| head` may close it: the actions still run
    output.write(
        json.dumps(
            match.to_dict() | {"actions": [_describe_action(a) for a in match.actions]}, ensure_ascii=False, indent=2
        )
        + "\n"
    )
    output.flush()
    if args.run:
        from voiced.actions.runner import ActionRunner
        from voiced.events import JsonlWriter

        runner = ActionRunner(checked.settings.actions, JsonlWriter(output))
        future = runner.dispatch(match)
        if future is not None:
            future.result()
        runner.shutdown(timeout=5)
    output.close()
    return 0
