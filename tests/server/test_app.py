"""`voiced serve` as a process: config, readiness, TLS, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import grpc
import pytest

from tests.cloud_fixtures import self_signed_certificate
from tests.server.test_service import audio_requests, config_request, finals
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.app import start_server
from voiced.server.config import AuthSettings, GrammarModel, ServerSettings, TlsSettings
from voiced.server.decoding import ModelError
from voiced.testing import free_port, silence


def test_tls_with_auth_serves_a_client_that_trusts_the_certificate(tmp_path, speech_pcm):
    cert_file, key_file = self_signed_certificate(tmp_path)
    token_file = tmp_path / "tokens"
    token_file.write_text("secret-token\n")
    server = start_server(
        ServerSettings(
            tls=TlsSettings(cert_file=cert_file, key_file=key_file), auth=AuthSettings(bearer_token_files=(token_file,))
        )
    )
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert_file.read_bytes())
        pcm = speech_pcm("what time is it", "flite:slt")
        with grpc.secure_channel(server.target, credentials) as channel:
            responses = list(
                stt_grpc.SttServiceStub(channel).StreamingRecognize(
                    iter([config_request(), *audio_requests(pcm)]),
                    metadata=[("authorization", "Bearer secret-token")],
                    timeout=60,
                )
            )
        assert "time" in finals(responses)[0]
        with grpc.insecure_channel(server.target) as plain, pytest.raises(grpc.RpcError) as refused:
            list(stt_grpc.SttServiceStub(plain).StreamingRecognize(iter([config_request()]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()


def test_a_grammar_with_words_outside_the_dictionary_fails_at_start():
    with pytest.raises(ModelError, match="xyzzyplugh"):
        start_server(
            ServerSettings(models={"bad": GrammarModel(jsgf="#JSGF V1.0;\ngrammar g;\npublic <a> = xyzzyplugh;\n")})
        )


def test_serve_reports_ready_to_systemd_answers_and_stops_on_sigterm(tmp_path):
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    port = free_port()
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "voiced", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert b"READY=1" in notify.recv(4096)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            responses = list(
                stt_grpc.SttServiceStub(channel).StreamingRecognize(
                    iter([config_request(), *audio_requests(silence(0.3, 16000))]), timeout=30
                )
            )
        assert finals(responses) == []  # silence: a clean end, no utterance
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
        assert b"STOPPING=1" in notify.recv(4096)
    finally:
        child.kill()
        notify.close()


def test_serve_with_an_invalid_config_exits_2_with_a_located_error(tmp_path):
    config = tmp_path / "voiced.yaml"
    config.write_text("server:\n  limits:\n    max_gap_s: -1\n")
    child = subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 2
    assert f"{config}:3:" in child.stderr and "max_gap_s" in child.stderr
