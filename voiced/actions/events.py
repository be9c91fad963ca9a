"""Events of actions (started, finished, failed, all done), emitted through the daemon's EventSink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from voiced.events import Event


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
