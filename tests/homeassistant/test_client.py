"""The conversation client against a stand-in HA on loopback: what it sends (the request's
shape, the bearer token), the answer it reads, and each way of failing, said clearly and
never with the token."""

from __future__ import annotations

import json
import logging

import pytest

from tests.homeassistant.conftest import PATH, TOKEN, Reply, conversation_result
from voiced.homeassistant.client import ConversationClient
from voiced.homeassistant.config import HomeAssistantSettings
from voiced.homeassistant.conversation import MAX_REPLY_BYTES, ConversationError
from voiced.testing import free_port

HOSTILE = 'turn on the light", "agent_id": "conversation.evil\r\nAuthorization: Bearer x'


def client_for(url: str, token_file, **settings) -> ConversationClient:
    section = HomeAssistantSettings.model_validate({"url": url, "token": {"file": str(token_file)}, **settings})
    return ConversationClient(section, "en-US")


@pytest.fixture
def client(home_assistant, token_file):
    client = client_for(home_assistant.url, token_file, timeout_s=2)
    yield client
    client.close()


def failure(client: ConversationClient, text: str = "what time is it") -> str:
    with pytest.raises(ConversationError) as error:
        client.ask(text)
    message = str(error.value)
    assert TOKEN not in message and TOKEN[-12:] not in message
    return message


def test_a_question_is_posted_as_ha_takes_it_with_the_bearer_token(home_assistant, client):
    answer = client.ask(HOSTILE)
    assert answer.speech == f"You asked: {HOSTILE}" and answer.response_type == "action_done"
    (request,) = home_assistant.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    # the transcript is data: one JSON string, nothing else of the request changes
    assert request.json == {"text": HOSTILE, "language": "en-US"}


def test_a_follow_up_continues_the_conversation_and_the_agent_is_named(home_assistant, token_file):
    client = client_for(home_assistant.url + "/", token_file, agent_id="conversation.chatgpt", language="de")
    try:
        client.ask("wie spät ist es")
        client.ask("und morgen")
    finally:
        client.close()
    first, second = (request.json for request in home_assistant.requests)
    assert first == {"text": "wie spät ist es", "language": "de", "agent_id": "conversation.chatgpt"}
    assert second == {**first, "text": "und morgen", "conversation_id": "01JSTANDIN"}


def test_has_own_error_answer_is_an_answer_with_its_code(home_assistant, client):
    home_assistant.answer = lambda request: Reply(
        body=conversation_result("Sorry, I couldn't understand that", "error", "no_intent_match")
    )
    answer = client.ask("fly me to the moon")
    assert (answer.response_type, answer.error_code) == ("error", "no_intent_match")
    assert answer.speech == "Sorry, I couldn't understand that"


def test_a_refused_token_is_named_by_its_fingerprint_and_a_rotated_file_is_read_again(
    home_assistant, client, token_file, caplog
):
    caplog.set_level(logging.DEBUG)
    home_assistant.token = "a-rotated-token"
    message = failure(client)
    assert message.startswith(f"POST {home_assistant.url}{PATH}: HTTP 401: Home Assistant refused the ")
    assert "sha256:" in message and f"file {token_file}" in message
    token_file.write_text("a-rotated-token\n")
    assert client.ask("what time is it").speech == "You asked: what time is it"
    assert home_assistant.requests[-1].headers["authorization"] == "Bearer a-rotated-token"
    assert TOKEN not in caplog.text and "a-rotated-token" not in caplog.text


def test_a_server_error_says_has_message(home_assistant, client):
    home_assistant.answer = lambda request: Reply(500, json.dumps({"message": "Agent crashed"}).encode())
    assert failure(client) == f"POST {home_assistant.url}{PATH}: HTTP 500: Agent crashed"
    home_assistant.answer = lambda request: Reply(502, b"<html>Bad gateway</html>", (("Content-Type", "text/html"),))
    assert failure(client) == f"POST {home_assistant.url}{PATH}: HTTP 502"


def test_a_wrong_address_is_said_to_be_no_conversation_api(home_assistant, client):
    home_assistant.answer = lambda request: Reply(404, b"404: Not Found")
    assert "HTTP 404: no conversation API there" in failure(client)


def test_no_answer_within_the_timeout(home_assistant, token_file):
    def hang(request):
        home_assistant.release.wait(60)
        return Reply(body=conversation_result("too late"))

    home_assistant.answer = hang
    client = client_for(home_assistant.url, token_file, timeout_s=0.5)
    try:
        assert failure(client) == f"POST {home_assistant.url}{PATH}: no answer within 0.5 s"
    finally:
        client.close()


def test_a_reply_that_trickles_is_cut_at_the_timeout_as_a_whole(home_assistant, token_file):
    # each byte comes within httpx's per-read timeout; the whole never does
    home_assistant.answer = lambda request: Reply(body=conversation_result("slow " * 50), trickle_s=0.05)
    client = client_for(home_assistant.url, token_file, timeout_s=1)
    try:
        assert failure(client) == f"POST {home_assistant.url}{PATH}: no answer within 1 s"
    finally:
        client.close()


def test_a_reply_that_is_not_json_or_not_a_conversation_result(home_assistant, client):
    home_assistant.answer = lambda request: Reply(body=b"<html>login</html>", headers=(("Content-Type", "text/html"),))
    assert failure(client) == f"POST {home_assistant.url}{PATH}: the reply is not JSON (18 bytes)"
    home_assistant.answer = lambda request: Reply(body=b'{"message": "API running."}')
    assert "has no `response` object" in failure(client)


def test_an_oversize_reply_is_not_read_whole(home_assistant, client):
    home_assistant.answer = lambda request: Reply(body=conversation_result("x" * MAX_REPLY_BYTES))
    assert failure(client) == f"POST {home_assistant.url}{PATH}: the reply is longer than {MAX_REPLY_BYTES} bytes"


def test_a_redirect_is_not_followed_with_the_token(home_assistant, client):
    home_assistant.answer = lambda request: Reply(302, b"", (("Location", "http://elsewhere.example/?t=1"),))
    message = failure(client)
    assert "HTTP 302: redirected to 'http://elsewhere.example/?t=***', not followed" in message
    assert len(home_assistant.requests) == 1


def test_nothing_listening_and_a_missing_token_file(token_file, tmp_path):
    client = client_for(f"http://127.0.0.1:{free_port()}", token_file)
    try:
        assert "ConnectError" in failure(client)
    finally:
        client.close()
    client = client_for(f"http://127.0.0.1:{free_port()}", tmp_path / "no-such-token")
    try:
        message = failure(client)
    finally:
        client.close()
    assert message.startswith("no Home Assistant token: file ")
    assert message.endswith(": cannot read the credential: No such file or directory")
