"""The decoder process's side of a session (voiced.server.decoders), over a real connection.

The sessions themselves run through real decoder processes in tests/server/test_workers.py;
here a stand-in recognizer fails on purpose, which no real engine does on demand."""

from __future__ import annotations

import threading
from multiprocessing import Pipe

from voiced.server.decoders import _serve_session


class FailingOnAudio:
    in_utterance = False

    def start(self):
        self.in_utterance = True

    def process(self, pcm: bytes):
        if pcm == b"bad":
            raise ValueError("bad audio")

    def partial(self) -> str:
        return "turn on"


class OneDecoder:
    def __init__(self):
        self.lent = FailingOnAudio()
        self.given_back: list[tuple[str, str, object]] = []

    def lend(self, language: str, model: str):
        return self.lent

    def give_back(self, language: str, model: str, recognizer) -> None:
        self.given_back.append((language, model, recognizer))


def serving(engine):
    server_end, decoder_end = Pipe()
    thread = threading.Thread(target=_serve_session, args=(engine, decoder_end), daemon=True)
    thread.start()
    server_end.send(("lend", ("en-US", "general")))
    assert server_end.recv() == ("ok", None, False)
    return server_end, thread


def test_audio_is_not_answered_and_its_failure_is_told_once_at_the_next_call():
    engine = OneDecoder()
    server, thread = serving(engine)
    server.send(("start", ()))
    assert server.recv() == ("ok", None, True)
    server.send(("process", (b"good",)))
    server.send(("process", (b"bad",)))
    server.send(("process", (b"good",)))
    assert not server.poll(0.2)  # audio gets no answer
    server.send(("partial", ()))
    outcome, error, in_utterance = server.recv()
    assert outcome == "error" and isinstance(error, ValueError) and str(error) == "bad audio" and in_utterance
    server.send(("partial", ()))
    assert server.recv() == ("ok", "turn on", True)
    server.send(("give_back", ()))
    assert server.recv() == ("ok", None, False)
    thread.join(10)
    assert engine.given_back == [("en-US", "general", engine.lent)]


def test_a_server_gone_mid_session_gives_its_decoder_back():
    engine = OneDecoder()
    server, thread = serving(engine)
    server.send(("process", (b"good",)))
    server.close()
    thread.join(10)
    assert not thread.is_alive() and engine.given_back == [("en-US", "general", engine.lent)]


def test_only_the_recognizers_calls_are_made():
    engine = OneDecoder()
    server, thread = serving(engine)
    for method in ("__init__", "give_back_all", "reset"):
        server.send((method, ()))
        outcome, error, _ = server.recv()
        assert outcome == "error" and f"{method!r} out of turn" in str(error)
    server.send(("partial", ()))
    assert server.recv() == ("ok", "turn on", False)
    server.close()
    thread.join(10)
