"""`voiced serve --workers N`: worker processes on one port (real processes, real gRPC)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import grpc

from tests.server.test_memory import held_calls
from voiced.testing import ServeProcess, process_tree


def test_two_workers_serve_one_port_each_with_its_own_streams_and_all_stop_on_sigterm(tmp_path, speech_pcm):
    # one stream per worker: two calls held at once prove two processes serve the port. The
    # kernel spreads connections by a hash, so 16 connections reach both workers (all 16
    # landing on one has odds of 2 in 65536)
    server = ServeProcess(tmp_path, {"limits": {"max_streams": 1}}, args=("--workers", "2"))
    pcm = speech_pcm("what time is it")
    try:
        workers = [pid for pid in process_tree(server.process.pid) if pid != server.process.pid]
        assert len(workers) == 2
        with held_calls(server.target, 16, pcm) as outcomes:
            assert outcomes.count("what time is it") == 2, outcomes
            assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 14
    finally:
        assert server.stop() == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)


def test_a_worker_that_dies_takes_the_server_down_for_its_supervisor_to_restart(tmp_path):
    server = ServeProcess(tmp_path, args=("--workers", "2"))
    try:
        workers = [pid for pid in process_tree(server.process.pid) if pid != server.process.pid]
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(60) == 1
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
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
