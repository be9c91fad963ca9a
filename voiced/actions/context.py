"""What an action gets of the command it runs for: a Match, plain data.

Matching (voiced.commands) makes it; actions only read it, so actions never import the
matcher. Its values reach programs, URLs and topics only through voiced.actions.templating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiced.actions.config import Action


@dataclass(frozen=True)
class Match:
    """A command heard: its intent and typed slots, the words matched, and its actions."""

    intent: str
    slots: dict[str, Any]
    text: str  # the normalized text that was matched (wake name removed)
    score: float  # 1.0 for an exact template match, the similarity for a fuzzy one
    language: str
    actions: tuple[Action, ...] = ()
    original_text: str = ""
    is_fallback: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "slots": self.slots,
            "text": self.text,
            "score": round(self.score, 3),
            "language": self.language,
            "is_fallback": self.is_fallback,
        }
