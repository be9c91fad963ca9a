"""What the daemon does with a final transcript: match it to a command, report, dispatch;
what no command matched goes to Home Assistant's conversation agent when one is configured.

Runs in the listener loop, so it must be quick and must not raise: matching is pure and
fast, and the actions (and Home Assistant's answers) run on the ActionRunner's own threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from voiced.actions.runner import ActionRunner
from voiced.commands.matching import CommandSet
from voiced.events import Event, EventSink, FinalEvent

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
    (then the fallback's actions, if the command files have a fallback). A rejection is logged
    at the default level: a command the speaker meant but that ran nothing must be visible.
    `command_set` None: no commands, every final that asks something is for `converse`."""

    def __init__(
        self,
        command_set: CommandSet | None,
        language: str,
        runner: ActionRunner,
        emit: EventSink,
        converse: Converse | None = None,
    ):
        self.command_set = command_set
        self.language = language
        self.runner = runner
        self.emit = emit
        self.converse = converse

    def __call__(self, final: FinalEvent) -> None:
        try:
            match = self.command_set.match(final.text, self.language) if self.command_set is not None else None
            unmatched = match is None or match.is_fallback
            question = self._addressed(final.text) if unmatched and self.converse is not None else None
        except Exception:  # a matcher bug must not take the listener down
            log.exception("matching %r failed", final.text)
            return
        if question is not None and self.converse is not None:
            log.info("session %d: no command matches %r: asking Home Assistant", final.session, final.text)
            self.converse(question, final.session)
            return
        if match is None or match.is_fallback:
            reason = final.reason or (
                f"no command matches {final.text!r}" if final.text else "nothing recognized as a command"
            )
            log.warning("session %d rejected: %s", final.session, reason)
            self.emit(RejectedEvent(final.text, reason, session=final.session))
        if match is None:
            return
        log.info("command %s %s from %r", match.intent, match.slots, final.text)
        self.emit(
            CommandMatchedEvent(
                match.intent, match.slots, match.text, round(match.score, 3), match.is_fallback, session=final.session
            )
        )
        self.runner.dispatch(match, final.session)

    def _addressed(self, text: str) -> str | None:
        if self.command_set is None:
            return text.strip() or None
        return self.command_set.addressed(text, self.language)
