"""Wire compatibility with stock clients: the official SDK's generated stubs (PyPI
`yandexcloud`, protobuf < 7) in their own virtualenv and process, against `voiced serve`.

The SDK cannot share a process with voiced's stubs (both register the same proto file, and
they need different protobuf majors), so its side runs as scripts under tests/interop/ in
.venv-yandexcloud, which `bash .ci/setup --dev` creates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
SDK_VENV = ROOT / ".venv-yandexcloud"
INTEROP = Path(__file__).resolve().parent / "interop"
TOKEN = "interop-test-token"


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    python = SDK_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{SDK_VENV} is missing: run the README's setup (bash .ci/setup --dev)")
    return python


@pytest.fixture(scope="module")
def voiced_serve(tmp_path_factory):
    """`voiced serve` as a user would run it, requiring a bearer token."""
    config = tmp_path_factory.mktemp("serve") / "server.yaml"
    config.write_text(f"server:\n  auth:\n    bearer_tokens: [{TOKEN}]\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voiced", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    target = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
    except grpc.FutureTimeoutError:
        process.kill()
        pytest.fail(f"voiced serve did not start: {process.communicate()[1].decode()[-2000:]}")
    yield target
    process.terminate()
    process.wait(30)


def seed_client(python: Path, target: str, pcm_path: Path, rate: int, token: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(python),
            str(INTEROP / "seed_client.py"),
            "--endpoint",
            target,
            "--token",
            token,
            "--folder_id",
            "b1gvmob95yysaplct532",
            "--path",
            str(pcm_path),
            "--rate",
            str(rate),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed_results(stdout: str) -> list[tuple[list[str], bool]]:
    """(alternatives, is_final) per response, from the seed's printout."""
    results, alternatives = [], []
    for line in stdout.splitlines():
        if line.startswith("alternative: "):
            alternatives.append(line.split(":", 1)[1].strip())
        elif line.startswith("Is final: "):
            results.append((alternatives, line.split(":", 1)[1].strip() == "True"))
            alternatives = []
    return results


@pytest.mark.parametrize(
    ("rate", "voice", "text", "expected"),
    [
        (48000, "flite:awb", "what time is it", "time"),  # 8 kHz: see the client tests (grammar model)
        (16000, "flite:slt", "turn on the kitchen lights", "kitchen"),
    ],
)
def test_seed_example_on_the_official_stubs_gets_results(
    voiced_serve, sdk_python, speech_pcm, tmp_path, rate, voice, text, expected
):
    pcm_path = tmp_path / "speech.pcm"
    pcm_path.write_bytes(speech_pcm(text, voice, rate))
    child = seed_client(sdk_python, voiced_serve, pcm_path, rate, TOKEN)
    assert child.returncode == 0, child.stdout + child.stderr
    # the client really ran on the SDK's stubs, not on voiced's
    assert f"stubs: {SDK_VENV}" in child.stderr and "site-packages/yandex/cloud/ai/stt/v2" in child.stderr
    results = seed_results(child.stdout)
    finals = [alternatives for alternatives, final in results if final]
    assert len(finals) == 1 and expected in finals[0][0], child.stdout
    assert not results[0][1], "partial results (partial_results=True) come before the final"


def test_seed_example_with_a_wrong_token_is_refused(voiced_serve, sdk_python, speech_pcm, tmp_path):
    pcm_path = tmp_path / "speech.pcm"
    pcm_path.write_bytes(speech_pcm("hello", "flite:slt", 8000))
    child = seed_client(sdk_python, voiced_serve, pcm_path, 8000, "not-the-token")
    assert child.returncode == 1
    assert "Error code StatusCode.UNAUTHENTICATED" in child.stdout, child.stdout + child.stderr


def compare_descriptors(python: Path, file_proto: descriptor_pb2.FileDescriptorProto) -> tuple[int, dict]:
    child = subprocess.run(
        [str(python), str(INTEROP / "compare_descriptors.py")],
        input=file_proto.SerializeToString(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return child.returncode, json.loads(child.stdout)


def our_file_proto() -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto()
    stt.DESCRIPTOR.CopyToProto(file_proto)
    return file_proto


def test_streaming_descriptors_are_identical_to_the_official_sdks(sdk_python):
    returncode, report = compare_descriptors(sdk_python, our_file_proto())
    assert report["differences"] == [] and returncode == 0
    assert sorted(name.rpartition(".")[2] for name in report["compared"]) == [
        "RecognitionConfig",
        "RecognitionSpec",
        "SpeechRecognitionAlternative",
        "SpeechRecognitionChunk",
        "StreamingRecognitionRequest",
        "StreamingRecognitionResponse",
        "WordInfo",
    ]
    assert report["ours"]["method"]["client_streaming"] and report["ours"]["method"]["server_streaming"]


def test_a_drifted_field_is_caught(sdk_python):
    drifted = our_file_proto()
    spec = next(m for m in drifted.message_type if m.name == "RecognitionSpec")
    next(f for f in spec.field if f.name == "sample_rate_hertz").number = 12
    returncode, report = compare_descriptors(sdk_python, drifted)
    assert returncode == 1 and report["differences"] == ["message .yandex.cloud.ai.stt.v2.RecognitionSpec"]
