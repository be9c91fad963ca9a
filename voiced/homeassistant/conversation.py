"""Home Assistant's conversation API, as data: the request `POST /api/conversation/process`
takes, the answer read back from its reply, and which conversation a question continues.
Pure: no I/O, no clocks (times are the caller's).

The request is the API's own schema: `text`, and `conversation_id`, `language`, `agent_id`
only when they have a value (HA refuses a null `conversation_id`, and any other key). The
reply is HA's ConversationResult:

    {"response": {"response_type": "action_done" | "query_answer" | "error",
                  "speech": {"plain": {"speech": "Turned on the light", ...}},
                  "data": {"code": "no_intent_match", ...}, "language": "en", ...},
     "conversation_id": "01J...", "continue_conversation": false}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# an answer is a sentence or a paragraph; this bounds what a broken or hostile server can make
# the daemon read and parse (an LLM's long answer is a few kB)
MAX_REPLY_BYTES = 256 * 1024


class ConversationError(Exception):
    """HA could not be asked or did not answer; the message is safe to log (no token)."""


@dataclass(frozen=True)
class Answer:
    speech: str  # what HA says; "" when it says nothing
    response_type: str  # action_done, query_answer or error (HA's own answer to what it cannot do)
    error_code: str | None  # with response_type error: why (no_intent_match, no_valid_targets, ...)
    conversation_id: str | None  # to continue this conversation
    continue_conversation: bool  # the agent asked something back


def conversation_request(
    text: str, language: str | None, agent_id: str | None, conversation_id: str | None
) -> dict[str, str]:
    """The JSON body of one question."""
    optional = {"conversation_id": conversation_id, "language": language, "agent_id": agent_id}
    return {"text": text, **{key: value for key, value in optional.items() if value is not None}}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_answer(body: bytes) -> Answer:
    """The answer in a reply's body; ConversationError if it is not HA's conversation result
    (the message describes the body, it never quotes it)."""
    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ConversationError(f"the reply is not JSON ({len(body)} bytes)") from None
    response = reply.get("response") if isinstance(reply, dict) else None
    if not isinstance(response, dict):
        raise ConversationError("the reply is not a conversation result: it has no `response` object")
    response_type = _text(response.get("response_type"))
    if response_type is None:
        raise ConversationError("the reply is not a conversation result: its response has no `response_type`")
    speech = response.get("speech")
    plain = speech.get("plain") if isinstance(speech, dict) else None
    said = _text(plain.get("speech")) if isinstance(plain, dict) else None
    data = response.get("data")
    return Answer(
        speech=(said or "").strip(),
        response_type=response_type,
        error_code=_text(data.get("code")) if response_type == "error" and isinstance(data, dict) else None,
        conversation_id=_text(reply.get("conversation_id")) or None,
        continue_conversation=reply.get("continue_conversation") is True,
    )


class ConversationMemory:
    """Which of HA's conversations a question continues: the one of its last answer, while
    that is at most `keep_s` old (HA forgets a conversation left alone for 5 min). Not
    thread-safe: its owner locks."""

    def __init__(self, keep_s: float):
        self.keep_s = keep_s
        self._conversation_id: str | None = None
        self._answered_at = 0.0

    def current(self, now: float) -> str | None:
        if self._conversation_id is None or self.keep_s <= 0 or now - self._answered_at > self.keep_s:
            return None
        return self._conversation_id

    def answered(self, conversation_id: str | None, now: float) -> None:
        self._conversation_id = conversation_id
        self._answered_at = now
