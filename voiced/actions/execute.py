"""The `exec`, `sound` and `say` actions."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from voiced.actions.config import ActionsSettings, ExecAction, SayAction, SoundAction
from voiced.actions.process import ActionError, run_process
from voiced.actions.templating import render, template_values

if TYPE_CHECKING:
    from voiced.commands.matching import Match


def _slot_env_name(name: str) -> str:
    return "VOICED_SLOT_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def exec_action(action: ExecAction, match: Match) -> tuple[str, str | None]:
    """Run the program; returns (detail, text to speak or None)."""
    values = template_values(match)
    argv = [render(arg, values) for arg in action.argv]
    env = {**os.environ, **action.env, "VOICED_INTENT": match.intent,
           "VOICED_TEXT": match.original_text or match.text}
    env.update({_slot_env_name(k): str(v) for k, v in match.slots.items()})
    stdin = json.dumps(match.to_dict() | {"original_text": match.original_text},
                       ensure_ascii=False).encode()
    result = run_process(argv, stdin=stdin, env=env, cwd=action.cwd, timeout_s=action.timeout_s,
                         max_output_bytes=action.max_output_bytes)
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-300:]
        raise ActionError(f"{argv[0]!r} exited with {result.returncode}: {tail}")
    spoken = result.stdout.decode(errors="replace").strip() if action.speak_output else None
    return f"exit 0{' (output truncated)' if result.truncated else ''}", spoken or None


def sound_action(action: SoundAction, settings: ActionsSettings) -> str:
    _checked(run_process([*settings.sound_command, str(action.file)], timeout_s=action.timeout_s))
    return "played"


def say_text(text: str, settings: ActionsSettings, timeout_s: float) -> str:
    # the text goes on stdin, never as an argument: "-w /etc/x" must not become an option
    _checked(run_process(list(settings.say_command), stdin=text.encode(), timeout_s=timeout_s))
    return "spoken"


def say_action(action: SayAction, match: Match, settings: ActionsSettings) -> str:
    values = template_values(match)
    return say_text(render(action.text, values), settings, action.timeout_s)


def _checked(result) -> None:
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-300:]
        raise ActionError(f"exited with {result.returncode}: {tail}")
