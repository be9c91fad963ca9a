"""`voiced serve --workers N`: one server, its sessions decoded in N processes (real processes,
real gRPC)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from tests.server.test_memory import held_calls
from voiced.testing import ServeProcess, cpu_seconds, proc_stat, process_tree


def test_the_streams_of_one_connection_are_decoded_in_both_processes_and_all_stop_on_sigterm(tmp_path, speech_pcm):
    # streams are spread one by one, to the process with the fewest sessions: a client that
    # puts all its calls on one connection uses both cores too (workers that each served the
    # port got whole connections, by the kernel's hash). max_streams applies to each process
    server = ServeProcess(tmp_path, {"limits": {"max_streams": 1}}, args=("--workers", "2"))
    pcm = speech_pcm("what time is it")
    try:
        decoders = [pid for pid in process_tree(server.process.pid) if pid != server.process.pid]
        assert len(decoders) == 2
        before = [cpu_seconds(pid) for pid in decoders]
        with held_calls(server.target, 3, pcm, one_connection=True) as outcomes:
            assert outcomes == ["what time is it", "what time is it", grpc.StatusCode.RESOURCE_EXHAUSTED]
            spent = [cpu_seconds(pid) - cpu for pid, cpu in zip(decoders, before, strict=True)]
            assert min(spent) > 0.1, f"one process decoded both: CPU s {spent}"
    finally:
        assert server.stop() == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in decoders)


def test_a_decoder_process_that_dies_takes_the_server_down_for_its_supervisor_to_restart(tmp_path):
    server = ServeProcess(tmp_path, args=("--workers", "2"))
    try:
        workers = [pid for pid in process_tree(server.process.pid) if pid != server.process.pid]
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(60) == 1
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
    finally:
        server.stop()


def test_a_local_client_without_the_key_does_not_take_a_decoder_process_down(tmp_path, speech_pcm):
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    # its own TMPDIR, short: pytest's own directories can be too long for a socket path
    private_tmp = Path(tempfile.mkdtemp(prefix="voiced-test-"))
    server = ServeProcess(tmp_path, args=("--workers", "2"), env={"TMPDIR": str(private_tmp)})
    try:
        sockets = sorted(private_tmp.glob("voiced-decoders-*/decoder-*.sock"))
        assert len(sockets) == 2 and oct(sockets[0].parent.stat().st_mode & 0o777) == "0o700"
        for path in sockets:
            with pytest.raises(AuthenticationError):
                Client(str(path), family="AF_UNIX", authkey=b"a guess")
        pcm = speech_pcm("what time is it")
        with held_calls(server.target, 2, pcm, one_connection=True) as outcomes:
            assert outcomes == ["what time is it", "what time is it"]  # one in each process
    finally:
        assert server.stop() == 0
        shutil.rmtree(private_tmp, ignore_errors=True)


def test_a_tmpdir_too_long_for_the_decoders_sockets_is_said_and_nothing_is_left(tmp_path):
    long_tmp = tmp_path / ("d" * 100)
    long_tmp.mkdir()
    started = subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--port", "0", "--workers", "2"],
        env={**os.environ, "TMPDIR": str(long_tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "longer than a UNIX socket's path may be (107 bytes): set TMPDIR to a shorter" in started.stderr
    assert not list(long_tmp.iterdir())


def test_decoder_processes_end_when_their_server_is_killed(tmp_path):
    # SIGKILL leaves the server no chance to stop them: they notice it is gone, and end
    server = ServeProcess(tmp_path, args=("--workers", "2"))
    try:
        decoders = [pid for pid in process_tree(server.process.pid) if pid != server.process.pid]
        assert len(decoders) == 2
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(60)
        deadline = time.monotonic() + 60
        # gone, or a zombie (ended; whoever adopted it has not reaped it yet)
        while any((fields := proc_stat(pid)) is not None and fields[0] != "Z" for pid in decoders):
            assert time.monotonic() < deadline, "decoder processes outlived their server"
            time.sleep(0.2)
    finally:
        server.stop()


def test_two_servers_without_workers_cannot_share_a_port(tmp_path):
    first = ServeProcess(tmp_path / "first")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "voiced", "serve", "--port", str(first.port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1 and "cannot start" in second.stderr
    finally:
        first.stop()


def test_zero_workers_is_a_usage_error():
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--workers", "0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 2 and "--workers" in child.stderr


def test_whisper_models_are_refused_with_workers(tmp_path):
    """CTranslate2's threads do not survive the fork of a decoder process (its first final
    hung): the server refuses at once, saying which models and what to do."""
    config = tmp_path / "voiced.yaml"
    commands = os.path.abspath("config/commands.yaml")
    config.write_text(f"server:\n  models:\n    commands: {{commands_files: [{commands}], engine: whisper}}\n")
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--config", str(config), "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 2 and "models commands use the Whisper engine" in child.stderr
    assert "one worker" in child.stderr
