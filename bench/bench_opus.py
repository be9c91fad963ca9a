"""Opus benchmark: bytes per utterance LINEAR16_PCM vs OGG_OPUS, encoder CPU, and what the recognizer hears.

    .venv/bin/python bench/bench_opus.py                      # ~2 min on 2 cores
    .venv/bin/python bench/bench_opus.py --bitrates 16000 --rates 16000 --json out.json

Every phrase (flite, four voices, with 0.3 s of silence before and 0.6 s after) is encoded
as the client does it (voiced.audio.opus.OggOpusEncoder, one Ogg page per 100 ms piece) at each
sample rate and Opus bitrate. Bytes are the audio_content bytes of a whole session (Ogg
headers included). Encoder CPU is process CPU time per second of audio. Each stream is
then recognized by an in-process `voiced serve` (open en-US model), as is the LINEAR16
audio, and the word error rate against the script is reported for both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
from bench_server import PHRASES  # the same phrases as the server benchmark

from voiced.audio.opus import OggOpusEncoder
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.app import start_server
from voiced.server.config import ServerSettings

PIECE_S = 0.1


def synthesize(text: str, voice: str, rate: int, workdir: Path) -> bytes:
    tts = workdir / "tts.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(tts)], check=True)
    pcm = subprocess.run(
        ["sox", str(tts), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return bytes(int(0.3 * rate) * 2) + pcm + bytes(int(0.6 * rate) * 2)


def pieces(pcm: bytes, rate: int) -> list[bytes]:
    step = int(rate * PIECE_S) * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def encode(pcm: bytes, rate: int, bitrate: int) -> tuple[list[bytes], float]:
    """The session's audio messages, and the CPU seconds it took to make them."""
    start = time.process_time()
    encoder = OggOpusEncoder(rate, bitrate=bitrate)
    messages = [encoder.encode(piece) for piece in pieces(pcm, rate)] + [encoder.flush()]
    return [m for m in messages if m], time.process_time() - start


def recognize(stub, messages: list[bytes], encoding, rate: int) -> str:
    spec = stt.RecognitionSpec(language_code="en-US", audio_encoding=encoding, sample_rate_hertz=rate)
    requests = [stt.StreamingRecognitionRequest(config=stt.RecognitionConfig(specification=spec))]
    requests += [stt.StreamingRecognitionRequest(audio_content=m) for m in messages]
    finals = [
        chunk.alternatives[0].text
        for response in stub.StreamingRecognize(iter(requests), timeout=60)
        for chunk in response.chunks
        if chunk.final and chunk.alternatives
    ]
    return " ".join(finals)


def word_errors(reference: str, hypothesis: str) -> int:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[8000, 16000, 48000])
    parser.add_argument("--bitrates", type=int, nargs="+", default=[12000, 16000, 24000, 32000])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    server = start_server(ServerSettings())
    channel = grpc.insecure_channel(server.target)
    stub = stt_grpc.SttServiceStub(channel)
    words = sum(len(text.split()) for _, text in PHRASES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in args.rates:
            audio = [(text, synthesize(text, voice, rate, Path(tmp))) for voice, text in PHRASES]
            seconds = sum(len(pcm) / 2 / rate for _, pcm in audio)
            linear_errors = sum(
                word_errors(text, recognize(stub, pieces(pcm, rate), stt.RecognitionSpec.LINEAR16_PCM, rate))
                for text, pcm in audio
            )
            linear_bytes = statistics.mean(len(pcm) for _, pcm in audio)
            for bitrate in args.bitrates:
                encoded = [(text, *encode(pcm, rate, bitrate)) for text, pcm in audio]
                opus_bytes = statistics.mean(sum(map(len, messages)) for _, messages, _ in encoded)
                cpu_s = sum(cpu for _, _, cpu in encoded)
                opus_errors = sum(
                    word_errors(text, recognize(stub, messages, stt.RecognitionSpec.OGG_OPUS, rate))
                    for text, messages, _ in encoded
                )
                rows.append(
                    {
                        "rate": rate,
                        "bitrate": bitrate,
                        "linear_bytes": round(linear_bytes),
                        "opus_bytes": round(opus_bytes),
                        "ratio": round(linear_bytes / opus_bytes, 1),
                        "encoder_cpu_ms_per_audio_s": round(1000 * cpu_s / seconds, 2),
                        "linear_wer": round(linear_errors / words, 3),
                        "opus_wer": round(opus_errors / words, 3),
                    }
                )
                print(" ".join(f"{key}={value}" for key, value in rows[-1].items()), flush=True)
    channel.close()
    server.stop()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
