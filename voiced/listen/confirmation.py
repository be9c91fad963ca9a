"""Asking back: a command heard but not surely enough is said as a question, and runs on "yes".

The Whisper engine rejects a command it is not sure of (its number led the runner-up by too
little: a wrong number is a wrong action; a slot value heard as nothing near it), and names it
in the final (`FinalEvent.unsure`). Rather than dropping it, the daemon asks ("Поставь таймер
на двадцать две минуты?") and runs it when the next thing said is yes
(voiced.commands.answers): no, other speech, or nothing said within the timeout, and it never
runs. One question is open at a time; a new one replaces it. A question nobody answers is
closed when its time is up (`expire`, called as time passes), so its `timeout` is reported
then, not with whatever is said next.

`Confirmations` is the pure core (the clock is passed in); voiced.listen.dispatch speaks the
question and carries out the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from voiced.actions.context import Match
from voiced.commands.answers import ANSWER_INTENTS, ANSWER_TEMPLATES, NO, YES
from voiced.commands.config import ConfirmSettings
from voiced.commands.matching import CommandSet
from voiced.events import Event
from voiced.textnorm import base_language

Answer = Literal["yes", "no", "other", "timeout"]


@dataclass(frozen=True)
class ConfirmationAskedEvent(Event):
    """A command said back as a question: it runs if the answer is yes."""

    type: ClassVar[str] = "confirmation_asked"
    intent: str
    slots: dict[str, Any]
    question: str
    session: int | None = None  # the recognition session the command was heard in


@dataclass(frozen=True)
class ConfirmationAnsweredEvent(Event):
    """How the question about `intent` ended: yes (it runs), no, other speech, or no answer in time."""

    type: ClassVar[str] = "confirmation_answered"
    intent: str
    answer: Answer
    session: int | None = None  # the session of the answer (None: timed out)


@dataclass(frozen=True)
class Question:
    match: Match
    text: str
    session: int | None
    until: float  # clock time the answer must come by


def question_text(sentence: str) -> str:
    """The command's sentence (spoken words) as a question: "Поставь таймер на пять минут?"."""
    sentence = sentence.strip().rstrip(".!?")
    return sentence[:1].upper() + sentence[1:] + "?"


def is_answer(match: Match | None) -> bool:
    return match is not None and match.intent in ANSWER_INTENTS


class Confirmations:
    """At most one open question; every final's match goes through `answer` first."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.open: Question | None = None

    def ask(self, match: Match, sentence: str, session: int | None, now: float) -> Question:
        self.open = Question(match, question_text(sentence), session, now + self.timeout_s)
        return self.open

    def answer(self, match: Match | None, heard: str, now: float) -> tuple[Question, Answer] | None:
        """The open question and how this final answers it; None when no question is open, or
        nothing was heard (a cough in the pause does not end the question). The question is
        closed by any answer; it closes unanswered once `until` has passed."""
        expired = self.expire(now)
        if expired is not None:
            return expired, "timeout"
        question = self.open
        if question is None or not heard:
            return None
        self.open = None
        if match is not None and match.intent == YES:
            return question, "yes"
        return question, "no" if match is not None and match.intent == NO else "other"

    def expire(self, now: float) -> Question | None:
        """The open question, closed, once its time is up; None while it may still be answered."""
        question = self.open
        if question is None or now <= question.until:
            return None
        self.open = None
        return question


def confirmations_for(settings: ConfirmSettings, command_set: CommandSet | None, language: str) -> Confirmations | None:
    """Asking back, where it is on and the commands hold the language's answers; else None."""
    if not settings.enabled or command_set is None or base_language(language) not in ANSWER_TEMPLATES:
        return None
    return Confirmations(settings.timeout_s) if YES in command_set.commands else None
