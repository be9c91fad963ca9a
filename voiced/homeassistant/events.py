"""Events of the conversation with Home Assistant, emitted through the daemon's EventSink:
`conversation_started`, then one outcome, `conversation_answered` or `conversation_failed`
(and `conversation_failed` with stage `speak` when HA's answer could not be spoken)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from voiced.events import Event


@dataclass(frozen=True)
class ConversationStartedEvent(Event):
    """No command matched what was heard: it is asked of HA's conversation agent."""

    type: ClassVar[str] = "conversation_started"
    text: str  # what HA is asked: the transcript, without the wake name it began with
    language: str
    session: int | None = None


@dataclass(frozen=True)
class ConversationAnsweredEvent(Event):
    """HA answered (emitted before the answer is spoken)."""

    type: ClassVar[str] = "conversation_answered"
    text: str
    answer: str  # what HA says (spoken, with home_assistant.speak)
    response_type: str  # action_done, query_answer, or error: HA's own "Sorry, ..." answers
    error_code: str | None  # with error: HA's reason (no_intent_match, no_valid_targets, ...)
    conversation_id: str | None
    continue_conversation: bool
    duration_s: float  # from asking to HA's answer read
    session: int | None = None


@dataclass(frozen=True)
class ConversationFailedEvent(Event):
    """HA could not be asked or did not answer in time (stage `ask`), or its answer could not
    be spoken (stage `speak`, after `conversation_answered`)."""

    type: ClassVar[str] = "conversation_failed"
    text: str
    stage: str  # ask or speak
    error: str
    session: int | None = None
