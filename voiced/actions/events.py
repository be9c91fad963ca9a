"""Events of command matching and actions, emitted through the daemon's EventSink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from voiced.events import Event


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


@dataclass(frozen=True)
class ActionStartedEvent(Event):
    type: ClassVar[str] = "action_started"
    intent: str
    index: int
    action: str
    session: int | None = None  # the recognition session the command was heard in


@dataclass(frozen=True)
class ActionFinishedEvent(Event):
    type: ClassVar[str] = "action_finished"
    intent: str
    index: int
    action: str
    duration_s: float
    detail: str  # e.g. "exit 0", "HTTP 200", "published"
    session: int | None = None


@dataclass(frozen=True)
class ActionFailedEvent(Event):
    type: ClassVar[str] = "action_failed"
    intent: str
    index: int
    action: str
    error: str
    session: int | None = None


@dataclass(frozen=True)
class ActionsDoneEvent(Event):
    """All actions of one command have run (`failed` of them failed)."""

    type: ClassVar[str] = "actions_done"
    intent: str
    failed: int
    session: int | None = None
