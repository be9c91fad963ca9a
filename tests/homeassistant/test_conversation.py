"""The conversation API as data: the request body, HA's replies read back, and which
conversation a question continues. Pure: no server, no clock."""

from __future__ import annotations

import json

import pytest

from tests.homeassistant.conftest import conversation_result
from voiced.homeassistant.conversation import (
    Answer,
    ConversationError,
    ConversationMemory,
    conversation_request,
    parse_answer,
)


def test_the_request_has_only_the_keys_that_have_a_value():
    assert conversation_request("hi", None, None, None) == {"text": "hi"}
    assert conversation_request("hi", "en", "conversation.x", "01J") == {
        "text": "hi",
        "language": "en",
        "agent_id": "conversation.x",
        "conversation_id": "01J",
    }


def test_has_answers_are_read_back():
    assert parse_answer(conversation_result(" Turned on the light ")) == Answer(
        "Turned on the light", "action_done", None, "01JSTANDIN", False
    )
    refused = parse_answer(
        conversation_result("Sorry, I am not aware of any area called attic", "error", "no_valid_targets")
    )
    assert (refused.response_type, refused.error_code) == ("error", "no_valid_targets")
    # an LLM agent asking back; an answer with nothing to say
    reply = {
        "response": {"response_type": "query_answer", "speech": {}},
        "conversation_id": 7,
        "continue_conversation": True,
    }
    assert parse_answer(json.dumps(reply).encode()) == Answer("", "query_answer", None, None, True)


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"\xff\xfe", "the reply is not JSON (2 bytes)"),
        (b"<html></html>", "the reply is not JSON (13 bytes)"),
        (b"[]", "it has no `response` object"),
        (b'{"response": "ok"}', "it has no `response` object"),
        (b'{"response": {"speech": {}}}', "its response has no `response_type`"),
    ],
)
def test_what_is_no_conversation_result_is_said_without_quoting_it(body, problem):
    with pytest.raises(ConversationError) as error:
        parse_answer(body)
    assert str(error.value).endswith(problem)


def test_a_question_continues_the_last_conversation_while_it_is_fresh():
    memory = ConversationMemory(keep_s=300)
    assert memory.current(now=0) is None
    memory.answered("01J", now=10)
    assert memory.current(now=310) == "01J" and memory.current(now=311) is None
    memory.answered(None, now=320)  # an agent that keeps no conversation
    assert memory.current(now=321) is None
    never = ConversationMemory(keep_s=0)
    never.answered("01J", now=0)
    assert never.current(now=0) is None
