"""The answers to a question the daemon asks back ("Поставь таймер на двадцать две минуты?"):
yes or no, as two built-in commands of the languages that have them.

They join the user's commands (voiced.commands.loading) so that the recognizer's closed set
holds them: Whisper picks "да" among the commands as it picks any other sentence. Outside a
question they run nothing (voiced.listen.confirmation). Measured by bench/bench_confirmation.py
(festival and espeak-ng Russian voices over the daemon's noise floor).
"""

from __future__ import annotations

from voiced.commands.config import Command, CommandFile

YES = "voiced.yes"
NO = "voiced.no"
ANSWER_INTENTS = frozenset({YES, NO})

# language -> (yes, no) templates; a language without an entry cannot confirm, and a command
# heard not surely enough in it is rejected as before
ANSWER_TEMPLATES: dict[str, tuple[str, str]] = {
    "ru": ("(да|верно|да верно)", "(нет|не надо|неверно|нет не надо)"),
}


def answer_commands(languages: list[str]) -> CommandFile | None:
    """The yes/no commands of those of `languages` that have answers; None if none has."""
    known = [language for language in languages if language in ANSWER_TEMPLATES]
    if not known:
        return None
    return CommandFile(
        commands={
            intent: Command(sentences={language: [ANSWER_TEMPLATES[language][index]] for language in known})
            for index, intent in enumerate((YES, NO))
        }
    )
