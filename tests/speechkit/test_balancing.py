"""Several `voiced serve` instances behind gRPC's own client-side balancing (round_robin over
an endpoint list or a dns:/// name), one of them killed mid-run (real processes on loopback)."""

from __future__ import annotations

import signal

import pydantic
import pytest

from tests.speechkit.test_recognizer import FAST_RETRY, recognize, texts
from voiced.protocol.results import SessionError
from voiced.speechkit.config import RecognitionSettings
from voiced.speechkit.recognizer import Recognizer
from voiced.testing import ServeProcess

COMMAND = "turn on the kitchen lights"
# the servers differ in one thing, so each final says which one answered
MASKED_BY_A = "turn on the k****** lights"


@pytest.fixture
def two_servers(tmp_path):
    servers = [ServeProcess(tmp_path / "a", {"profanity_words": ["kitchen"]}), ServeProcess(tmp_path / "b")]
    yield servers
    for server in servers:
        server.stop()


def test_sessions_are_spread_over_an_endpoint_list_and_go_on_when_one_server_is_killed(two_servers, speech_pcm):
    a, b = two_servers
    settings = RecognitionSettings(
        endpoint=[a.target, b.target], profanity_filter=True, partial_results=False, retry=FAST_RETRY
    )
    pcm = speech_pcm(COMMAND)
    with Recognizer(settings, settings.target()) as recognizer:
        # round_robin takes each server in turn once both are connected (pick_first would send
        # every session to the first); until both answered, at most a dozen sessions
        answered = set()
        for _ in range(12):
            (text,) = texts(recognize(recognizer, pcm))
            answered.add(text)
            if answered == {MASKED_BY_A, COMMAND}:
                break
        assert answered == {MASKED_BY_A, COMMAND}

        session = recognizer.session()  # a server is killed in the middle of this one
        session.send(pcm[: len(pcm) // 2])
        a.process.send_signal(signal.SIGKILL)
        assert a.process.wait(60) == -signal.SIGKILL
        session.send(pcm[len(pcm) // 2 :])
        session.finish()
        events = list(session.events())
        assert texts(events) in ([COMMAND], [MASKED_BY_A]), events  # all its audio, from whichever heard it

        after = [recognize(recognizer, pcm) for _ in range(4)]
    assert [texts(events) for events in after] == [[COMMAND]] * 4, after
    assert not [e for events in after for e in events if isinstance(e, SessionError)]


def test_a_dns_name_is_balanced_over_its_addresses(two_servers, speech_pcm):
    # "localhost" resolves to 127.0.0.1 (and ::1): both servers listen on 127.0.0.1 with their
    # own ports, so here a DNS name reaches one of them; what is tested is that such a target
    # is accepted and served through the balancing policy
    a, _ = two_servers
    settings = RecognitionSettings(
        endpoint=f"dns:///localhost:{a.port}", profanity_filter=True, partial_results=False, retry=FAST_RETRY
    )
    with Recognizer(settings, settings.target()) as recognizer:
        assert texts(recognize(recognizer, speech_pcm(COMMAND))) == [MASKED_BY_A]


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        (["localhost:50051"], "dns:///"),
        (["127.0.0.1"], "IP:port entries"),
        (["127.0.0.1:1", "[::1]:2"], "all IPv4 or all IPv6"),
        ([], "at least 1"),
    ],
)
def test_an_endpoint_list_takes_ip_addresses_with_ports(endpoint, problem):
    with pytest.raises(pydantic.ValidationError, match=problem.replace("(", r"\(")):
        RecognitionSettings(endpoint=endpoint)
