"""What the daemon does with a final transcript: match it to a command, report, dispatch;
what no command matched goes to Home Assistant's conversation agent when one is configured.

Runs in the listener loop, so it must be quick and must not raise: matching is pure and
fast, and the actions (and Home Assistant's answers) run on the ActionRunner's own threads.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

from voiced.actions.config import ACTION_TIMEOUT_S
from voiced.actions.context import Match
from voiced.actions.runner import ActionRunner
from voiced.commands.matching import CommandSet
from voiced.events import Event, EventSink, FinalEvent
from voiced.listen.confirmation import (
    ConfirmationAnsweredEvent,
    ConfirmationAskedEvent,
    Confirmations,
    Question,
    is_answer,
)

log = logging.getLogger(__name__)


# asks another listener (Home Assistant) what no command matched: (text, session)
Converse = Callable[[str, int], None]


@dataclass(frozen=True)
class CommandMatchedEvent(Event):
    type: ClassVar[str] = "command_matched"
    intent: str
    slots: dict[str, Any]
    text: str
    score: float
    is_fallback: bool
    session: int | None = None  # the recognition session whose final this was


@dataclass(frozen=True)
class RejectedEvent(Event):
    """A final that runs no command (the fallback's actions may still run): what was heard and
    why it is not a command."""

    type: ClassVar[str] = "rejected"
    text: str
    reason: str
    session: int | None = None


class CommandHandler:
    """FinalEvent -> `command_matched` + actions; or, when no command matches, `converse` (Home
    Assistant) if there is one and the final asks something; else `rejected` with the reason
    (then the fallback's actions, if the command files have a fallback). A command the engine
    was unsure of (`FinalEvent.unsure`) is asked back first when `confirmations` is given: the
    next final answers it (voiced.listen.confirmation). A rejection is logged
    at the default level: a command the speaker meant but that ran nothing must be visible.
    `command_set` None: no commands, every final that asks something is for `converse`."""

    def __init__(
        self,
        command_set: CommandSet | None,
        language: str,
        runner: ActionRunner,
        emit: EventSink,
        converse: Converse | None = None,
        confirmations: Confirmations | None = None,
        hold_input: Callable[[], AbstractContextManager] = contextlib.nullcontext,
        clock: Callable[[], float] = time.monotonic,
        await_answer: Callable[[], None] = lambda: None,
    ):
        """`confirmations`: ask back what the engine was unsure of (None: reject it), speaking
        the question with the input held by `hold_input`; `await_answer` lets the answer in
        without the wake word (called on the listener's thread, as this handler is)."""
        self.command_set = command_set
        self.language = language
        self.runner = runner
        self.emit = emit
        self.converse = converse
        self.confirmations = confirmations
        self.hold_input = hold_input
        self.clock = clock
        self.await_answer = await_answer

    def __call__(self, final: FinalEvent) -> None:
        now = self.clock()
        try:
            match = self.command_set.match(final.text, self.language) if self.command_set is not None else None
            # what the engine was unsure of (a command to ask back, or an answer it guessed)
            unsure = None
            if final.unsure and self.command_set is not None:
                unsure = self.command_set.match(final.unsure, self.language)
        except Exception:  # a matcher bug must not take the listener down
            log.exception("matching %r failed", final.text or final.unsure)
            return
        if self._answers_question(final, unsure if match is None and is_answer(unsure) else match, now):
            return
        if is_answer(match):
            self._reject(final, f"{final.text!r} answers a question, but none is open")
            return
        try:
            if (match is None or match.is_fallback) and unsure is not None and self._ask(final, unsure, now):
                return
            unmatched = match is None or match.is_fallback
            question = self._addressed(final.text) if unmatched and self.converse is not None else None
        except Exception:
            log.exception("matching %r failed", final.text)
            return
        if question is not None and self.converse is not None:
            log.info("session %d: no command matches %r: asking Home Assistant", final.session, final.text)
            self.converse(question, final.session)
            return
        if match is None or match.is_fallback:
            self._reject(
                final,
                final.reason
                or (f"no command matches {final.text!r}" if final.text else "nothing recognized as a command"),
            )
        if match is not None:
            self._run(match, final.session)

    def tick(self) -> None:
        """As time passes (the listening loop's every turn): a question unanswered in time is
        reported closed now, not with the next final."""
        expired = self.confirmations.expire(self.clock()) if self.confirmations is not None else None
        if expired is not None:
            self._timed_out(expired)

    def _timed_out(self, question: Question) -> None:
        log.info("%r was not answered in time", question.text)
        self.emit(ConfirmationAnsweredEvent(question.match.intent, "timeout", None))

    def _answers_question(self, final: FinalEvent, match: Match | None, now: float) -> bool:
        """Close the open question, if any, with this final; True if the final was its answer
        (yes: the command asked about runs), False if it is to be handled as itself."""
        # a command heard unsure is speech too: it ends the open question (and asks its own);
        # an answer heard unsure (only guessed from a garble) is the answer (`match`)
        heard = final.text or final.unsure
        answered = self.confirmations.answer(match, heard, now) if self.confirmations is not None else None
        if answered is None:
            return False
        asked, answer = answered
        if answer == "timeout":  # due before this final, between two turns of the loop
            self._timed_out(asked)
            return False
        log.info("session %d: %r answered %s", final.session, asked.text, answer)
        self.emit(ConfirmationAnsweredEvent(asked.match.intent, answer, final.session))
        if answer == "yes":
            self._run(asked.match, asked.session)
        return answer in ("yes", "no")

    def _reject(self, final: FinalEvent, reason: str) -> None:
        log.warning("session %d rejected: %s", final.session, reason)
        self.emit(RejectedEvent(final.text, reason, session=final.session))

    def _run(self, match: Match, session: int | None) -> None:
        log.info("command %s %s from %r", match.intent, match.slots, match.original_text or match.text)
        self.emit(
            CommandMatchedEvent(
                match.intent, match.slots, match.text, round(match.score, 3), match.is_fallback, session=session
            )
        )
        self.runner.dispatch(match, session)

    def _ask(self, final: FinalEvent, match: Match, now: float) -> bool:
        """Say the command the engine was unsure of back as a question; False when it cannot be
        asked (asking off, the language has no answers, the sentence is no command). The sentence
        is matched as any final is: the engine takes a transcript that is a command as it stands
        ("поставить громкость 20", a word of the template in another form of itself), and such
        a sentence, unsure of its number, was rejected unasked (7 of the 26 misses on bench set
        ru-volume)."""
        if self.confirmations is None:
            return False
        if match.is_fallback or is_answer(match):
            return False
        question = self.confirmations.ask(match, final.unsure, final.session, now)
        log.info("session %d: asking %r (%s)", final.session, question.text, final.reason)
        self.emit(ConfirmationAskedEvent(match.intent, match.slots, question.text, session=final.session))
        self.await_answer()
        if self.runner.submit(lambda: self._say(question.text)) is None:
            log.warning("could not say the question %r: too many commands in flight", question.text)
        return True

    def _say(self, text: str) -> None:
        """On an action thread: speak, with the microphone's input held (the speaker must not
        hear its own question as the answer, or as the command it names)."""
        try:
            with self.hold_input():
                self.runner.say(text, ACTION_TIMEOUT_S)  # to synthesize and play it, as a `say` action
        except Exception as exc:  # reported; the question stays open (it is in the events too)
            log.warning("could not say the question %r: %s", text, exc)

    def _addressed(self, text: str) -> str | None:
        if self.command_set is None:
            return text.strip() or None
        return self.command_set.addressed(text, self.language)
