"""`voiced serve --wyoming` as a process: the flag and the config key, workers, refusals at
start, and SIGTERM with Wyoming connections open (real processes, the real wyoming client)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe

from voiced.server.config import tcp_address
from voiced.settings import load_settings
from voiced.testing import ServeProcess, free_port
from voiced.testing.wyoming_client import exchange, request_events, transcript


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--port", "0", *args], capture_output=True, text=True, timeout=120
    )


def test_sigterm_stops_the_wyoming_listener_with_a_stream_in_flight_and_an_idle_connection(tmp_path, speech_pcm):
    uri = f"tcp://127.0.0.1:{free_port()}"
    server = ServeProcess(tmp_path, args=("--wyoming", uri))
    pcm = speech_pcm("what time is it")

    async def connected_through_sigterm() -> tuple[object, object]:
        async with AsyncTcpClient(*tcp_address(uri)) as idle, AsyncTcpClient(*tcp_address(uri)) as busy:
            await idle.write_event(Describe().event())
            assert (await idle.read_event()).type == "info"
            for event in request_events(pcm)[:-1]:  # a stream that never ends
                await busy.write_event(event)
            assert (await busy.read_event()).type == "transcript-start"
            server.process.send_signal(signal.SIGTERM)
            return await idle.read_event(), await busy.read_event()

    try:
        assert transcript(exchange(uri, request_events(pcm))) == "what time is it"
        # the idle connection closes at once; the stream is cancelled after the 5 s grace
        assert asyncio.run(asyncio.wait_for(connected_through_sigterm(), 60)) == (None, None)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(tcp_address(uri)) != 0  # nothing listens there any more


def test_the_config_key_serves_wyoming_too(tmp_path, speech_pcm):
    uri = f"tcp://127.0.0.1:{free_port()}"
    server = ServeProcess(tmp_path, {"wyoming": {"uri": uri}})
    try:
        assert transcript(exchange(uri, request_events(speech_pcm("what time is it")))) == "what time is it"
    finally:
        assert server.stop() == 0


def test_with_two_decoder_processes_wyoming_holds_one_stream_in_each(tmp_path, speech_pcm):
    # max_streams applies to each decoder process: two Wyoming streams held at once, the rest
    # busy (that sessions are spread over the processes is tested over gRPC, test_workers.py)
    uri = f"tcp://127.0.0.1:{free_port()}"
    server = ServeProcess(tmp_path, {"limits": {"max_streams": 1}}, args=("--workers", "2", "--wyoming", uri))
    pcm = speech_pcm("what time is it")

    async def held(count: int) -> list[str]:
        clients = [AsyncTcpClient(*tcp_address(uri)) for _ in range(count)]
        try:
            answers = []
            for client in clients:
                await client.connect()
                for event in request_events(pcm)[:3]:  # transcribe, audio-start, a chunk
                    await client.write_event(event)
                answer = await client.read_event()
                answers.append(answer.data.get("code", answer.type))
            return answers
        finally:
            for client in clients:
                await client.disconnect()

    try:
        answers = asyncio.run(asyncio.wait_for(held(16), 120))
        assert sorted(set(answers)) == ["busy", "transcript-start"] and answers.count("transcript-start") == 2
    finally:
        assert server.stop() == 0


def test_a_uri_that_is_not_tcp_is_a_usage_error():
    child = serve("--wyoming", "unix:///run/voiced.sock")
    assert child.returncode == 2
    assert "voiced serve: --wyoming: 'unix:///run/voiced.sock' is not a tcp://HOST:PORT URI" in child.stderr


def test_wyoming_beside_configured_auth_is_refused_unless_allowed(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("server:\n  auth:\n    api_keys: [secret-key]\n  wyoming:\n    uri: tcp://127.0.0.1:0\n")
    child = serve("--config", str(config))
    assert child.returncode == 2 and "secret-key" not in child.stderr
    assert f"{config}:5:5: server.wyoming: " in child.stderr
    assert "Wyoming protocol has no authentication" in child.stderr
    config.write_text("server:\n  auth:\n    api_keys: [secret-key]\n")
    child = serve("--config", str(config), "--wyoming", "tcp://127.0.0.1:0")
    assert child.returncode == 2 and "Wyoming protocol has no authentication" in child.stderr
    config.write_text(
        "server:\n  auth:\n    api_keys: [secret-key]\n  wyoming:\n    uri: tcp://127.0.0.1:10300\n"
        "    allow_without_auth: true\n"
    )
    assert load_settings(config).server.wyoming.address == ("127.0.0.1", 10300)


def test_a_wyoming_port_in_use_stops_serve_at_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        child = serve("--wyoming", f"tcp://127.0.0.1:{taken.getsockname()[1]}")
    assert child.returncode == 1 and "cannot start" in child.stderr
