"""The committed stubs match protos/ and the wire facts of SpeechKit STT v2."""

import subprocess
import sys
from pathlib import Path

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_fresh():
    result = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _fields(message) -> dict[str, tuple[int, str]]:
    return {f.name: (f.number, f.type) for f in message.DESCRIPTOR.fields}


def test_field_names_and_numbers_match_the_wire_table():
    f = stt.RecognitionSpec.DESCRIPTOR.fields_by_name
    assert {name: fd.number for name, fd in f.items()} == {
        "audio_encoding": 1,
        "sample_rate_hertz": 2,
        "language_code": 3,
        "profanity_filter": 4,
        "model": 5,
        "partial_results": 7,
        "single_utterance": 8,
        "audio_channel_count": 9,
        "raw_results": 10,
        "literature_text": 11,
    }
    assert f["sample_rate_hertz"].type == f["sample_rate_hertz"].TYPE_INT64
    assert dict(stt.RecognitionSpec.AudioEncoding.items()) == {
        "AUDIO_ENCODING_UNSPECIFIED": 0,
        "LINEAR16_PCM": 1,
        "OGG_OPUS": 2,
        "MP3": 3,
    }
    request = stt.StreamingRecognitionRequest.DESCRIPTOR
    assert [f.name for f in request.oneofs_by_name["streaming_request"].fields] == ["config", "audio_content"]
    assert {n: fd.number for n, fd in stt.SpeechRecognitionChunk.DESCRIPTOR.fields_by_name.items()} == {
        "alternatives": 1,
        "final": 2,
        "end_of_utterance": 3,
    }
    assert {n: fd.number for n, fd in stt.WordInfo.DESCRIPTOR.fields_by_name.items()} == {
        "start_time": 1,
        "end_time": 2,
        "word": 3,
        "confidence": 4,
    }


def test_method_path_is_the_services():
    service = stt.DESCRIPTOR.services_by_name["SttService"]
    method = service.methods_by_name["StreamingRecognize"]
    assert method.full_name == "yandex.cloud.ai.stt.v2.SttService.StreamingRecognize"


def test_encoding_name_string_is_accepted_like_the_seed_example():
    spec = stt.RecognitionSpec(audio_encoding="LINEAR16_PCM", sample_rate_hertz=8000)
    assert spec.audio_encoding == stt.RecognitionSpec.LINEAR16_PCM


def test_the_servers_encoding_table_is_the_wire_enum():
    from voiced.server.spec import ENCODINGS

    assert {number: name for name, number in stt.RecognitionSpec.AudioEncoding.items()} == ENCODINGS
