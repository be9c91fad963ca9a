"""A stand-in for Home Assistant's conversation API (HA core cannot run here): a real HTTP
server on loopback that checks the bearer token as HA does, records every request, and
answers as HA's `POST /api/conversation/process` does, or as a test tells it to."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "eyJhbGciOiJIUzI1NiJ9.stand-in-long-lived-token.c2VjcmV0"
PATH = "/api/conversation/process"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    trickle_s: float | None = None  # the body a byte at a time, this far apart (until released)


def conversation_result(speech: str, response_type: str = "action_done", code: str | None = None) -> bytes:
    """A reply body as HA's conversation API gives it."""
    response = {
        "response_type": response_type,
        "speech": {"plain": {"speech": speech, "extra_data": None}},
        "card": {},
        "language": "en",
        "data": {"code": code} if code else {"targets": [], "success": [], "failed": []},
    }
    return json.dumps({"response": response, "conversation_id": "01JSTANDIN", "continue_conversation": False}).encode()


def echo(request: Request) -> Reply:
    """HA's default stand-in answer: it repeats what it was asked."""
    return Reply(body=conversation_result(f"You asked: {request.json['text']}"))


class StandInHomeAssistant:
    """`answer` decides each reply of an authorized request (a wrong token gets HA's 401 first);
    `release` ends every reply still held back (a test's hanging server)."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.answer: Callable[[Request], Reply] = echo
        self.requests: list[Request] = []
        self.changed = threading.Condition()
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with stand_in.changed:
                    stand_in.requests.append(request)
                    stand_in.changed.notify_all()
                if request.headers.get("authorization") != f"Bearer {stand_in.token}":
                    reply = Reply(401, b"401: Unauthorized", (("Content-Type", "text/plain"),))
                else:
                    reply = stand_in.answer(request)
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.trickle_s is None:
                    self.wfile.write(reply.body)
                    return
                for byte in reply.body:
                    if stand_in.release.wait(reply.trickle_s):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for_requests(self, count: int, timeout: float = 60) -> list[Request]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def home_assistant():
    stand_in = StandInHomeAssistant()
    yield stand_in
    stand_in.close()


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "ha-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path
