"""The `exec`, `sound` and `say` actions."""

from __future__ import annotations

import json
import time

from voiced.actions.config import ActionsSettings, ExecAction, SayAction, SoundAction
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.process import ProcessResult, RunningPrograms, child_environment, failure, run_process
from voiced.actions.templating import render, template_values

# a spoken answer as WAV: 22 kHz 16-bit speech is ~44 kB/s, so this is minutes of it
MAX_SPEECH_BYTES = 16 * 1024 * 1024


def _slot_env_name(name: str) -> str:
    return "VOICED_SLOT_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def exec_action(action: ExecAction, match: Match, programs: RunningPrograms | None = None) -> tuple[str, str | None]:
    """Run the program; returns (detail, text to speak or None)."""
    values = template_values(match)
    argv = [render(arg, values) for arg in action.argv]
    extra = {
        **action.env,
        "VOICED_INTENT": match.intent,
        "VOICED_TEXT": values["text"],
        "VOICED_RAW_TEXT": values["raw_text"],
    }
    extra.update({_slot_env_name(k): str(v) for k, v in match.slots.items()})
    stdin = json.dumps(match.to_dict() | {"original_text": match.original_text}, ensure_ascii=False).encode()
    result = run_process(
        argv,
        stdin=stdin,
        env=child_environment(extra, tuple(action.pass_env)),
        cwd=action.cwd,
        timeout_s=action.timeout_s,
        max_output_bytes=action.max_output_bytes,
        programs=programs,
    )
    if result.returncode != 0:
        raise failure(argv[0], result)
    spoken = result.stdout.decode(errors="replace").strip() if action.speak_output else None
    return f"exit 0{' (output truncated)' if result.truncated else ''}", spoken or None


def sound_action(action: SoundAction, settings: ActionsSettings, programs: RunningPrograms | None = None) -> str:
    _checked(
        settings.sound_command[0],
        run_process([*settings.sound_command, str(action.file)], timeout_s=action.timeout_s, programs=programs),
    )
    return "played"


def say_text(text: str, settings: ActionsSettings, timeout_s: float, programs: RunningPrograms | None = None) -> str:
    """Synthesize with `say_command` (text on stdin, never as an argument: "-w /etc/x" must not
    become an option; WAV on stdout), then play it with `sound_command` (reading stdin, "-"):
    the player's exit status says whether it was heard (espeak-ng exits 0 without a device)."""
    deadline = time.monotonic() + timeout_s
    speech = run_process(
        list(settings.say_command),
        stdin=text.encode(),
        timeout_s=timeout_s,
        max_output_bytes=MAX_SPEECH_BYTES,
        programs=programs,
    )
    _checked(settings.say_command[0], speech)
    if speech.truncated or not speech.stdout:
        raise ActionError(
            f"{settings.say_command[0]!r} gave "
            + (
                f"more than {MAX_SPEECH_BYTES} bytes of audio"
                if speech.truncated
                else "no audio on stdout (say_command must write a WAV there, e.g. espeak-ng --stdin --stdout)"
            )
        )
    _checked(
        settings.sound_command[0],
        run_process(
            [*settings.sound_command, "-"],
            stdin=speech.stdout,
            timeout_s=max(0.1, deadline - time.monotonic()),
            programs=programs,
        ),
    )
    return "spoken"


def say_action(
    action: SayAction, match: Match, settings: ActionsSettings, programs: RunningPrograms | None = None
) -> str:
    values = template_values(match)
    return say_text(render(action.text, values), settings, action.timeout_s, programs)


def _checked(program: str, result: ProcessResult) -> None:
    if result.returncode != 0:
        raise failure(program, result)
