"""The daemon's stage for what no command matched: ask Home Assistant's conversation agent,
report its answer, speak it.

The listener hands over a question and goes on at once: the question waits for HA and the
answer is spoken on the ActionRunner's threads, within its bounds (queue, concurrency, the
stop bound; the speaking programs are stopped with the actions'). Nothing here raises into
the listener: every failure is a `conversation_failed` event and a log line.
"""

from __future__ import annotations

import logging
import time

from voiced.actions.runner import QUEUE_FULL, ActionRunner
from voiced.events import EventSink
from voiced.homeassistant.client import ConversationClient
from voiced.homeassistant.conversation import ConversationError
from voiced.homeassistant.events import ConversationAnsweredEvent, ConversationFailedEvent, ConversationStartedEvent

log = logging.getLogger(__name__)


class ConversationFallback:
    def __init__(self, client: ConversationClient, runner: ActionRunner, emit: EventSink):
        self.client = client
        self.runner = runner
        self.emit = emit

    def __call__(self, text: str, session: int | None) -> None:
        """Ask HA `text` (a transcript no command matched, its wake name removed)."""
        self.emit(ConversationStartedEvent(text, self.client.language, session))
        if self.runner.submit(lambda: self._converse(text, session)) is None:
            self._failed(text, "ask", QUEUE_FULL, session)

    def _converse(self, text: str, session: int | None) -> None:
        started = time.monotonic()
        try:
            answer = self.client.ask(text)
        except ConversationError as exc:
            self._failed(text, "ask", str(exc), session)
            return
        except Exception as exc:  # a bug here must not go unreported
            log.exception("asking Home Assistant failed")
            self._failed(text, "ask", f"{type(exc).__name__}: {exc}", session)
            return
        if answer.response_type == "error":  # HA understood nothing it could do: say why, loudly
            log.warning("Home Assistant could not do %r (%s): %r", text, answer.error_code or "no code", answer.speech)
        else:
            log.info("Home Assistant answered %r (%s): %r", text, answer.response_type, answer.speech)
        self.emit(
            ConversationAnsweredEvent(
                text,
                answer.speech,
                answer.response_type,
                answer.error_code,
                answer.conversation_id,
                answer.continue_conversation,
                round(time.monotonic() - started, 3),
                session,
            )
        )
        settings = self.client.settings
        if not (settings.speak and answer.speech):
            return
        try:
            self.runner.say(answer.speech, settings.speak_timeout_s)
        except Exception as exc:  # ActionError: the synthesizer or the player failed
            self._failed(text, "speak", f"speaking Home Assistant's answer failed: {exc}", session)

    def _failed(self, text: str, stage: str, error: str, session: int | None) -> None:
        log.warning("asking Home Assistant %r failed: %s", text, error)
        self.emit(ConversationFailedEvent(text, stage, error, session))

    def close(self) -> None:
        self.client.close()
