"""Transcript latency after the end of the audio, over Wyoming and over the v2 gRPC API, on the
same audio, the same server process and the same models.

    .venv/bin/python bench/bench_wyoming.py                # ~6 min on 2 cores
    .venv/bin/python bench/bench_wyoming.py --rounds 1 --json wyoming.json

Starts `voiced serve --wyoming` as a child process (tests/conftest.py's ServeProcess) with a
pocketsphinx grammar of the phrases and the Whisper commands model of config/commands.yaml
beside the open language model. Each of bench_server.py's eight phrases (four flite voices,
0.3 s of silence before and 0.6 s after the speech) is sent in 64 ms chunks at real-time pace,
as Home Assistant streams a microphone, once over each API (which goes first alternates by
round), one request at a time:

- Wyoming: transcribe, audio-start, the chunks, audio-stop; the latency runs from writing
  audio-stop to reading `transcript` (the wyoming library's AsyncTcpClient).
- v2 API: the config, the chunks, the half-close; from the half-close to the call's end (its
  last final; raw grpcio stubs).

"agree" counts the phrases whose transcript over Wyoming is the v2 API's finals joined. A
request that fails (e.g. the v2 API's 5 s gap limit on a machine too busy to send in time) is
counted apart, not timed. The load average is printed with each model: other jobs on the
machine make every figure longer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from bench_server import GRAMMAR_MODEL, PHRASES, RATE, server_section, synthesize
from wyoming.audio import AudioStop
from wyoming.client import AsyncTcpClient

from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.server.config import tcp_address
from voiced.testing import ServeProcess, free_port
from voiced.testing.wyoming_client import CHUNK_BYTES, request_events

ROOT = Path(__file__).resolve().parent.parent

WHISPER_MODEL = "whisper-commands"
MODELS = ("general", GRAMMAR_MODEL, WHISPER_MODEL)
CHUNK_S = CHUNK_BYTES / 2 / RATE


async def over_wyoming(uri: str, model: str, pcm: bytes, pace: float) -> tuple[str, float]:
    """(transcript, seconds from audio-stop to the transcript)."""
    *audio, _ = request_events(pcm, name=None if model == "general" else model, language="en-US")
    async with AsyncTcpClient(*tcp_address(uri)) as client:
        started = time.monotonic()
        for index, event in enumerate(audio):
            await asyncio.sleep(max(0.0, started + (index - 2) * CHUNK_S / pace - time.monotonic()))
            await client.write_event(event)
        stopped = time.monotonic()
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if event.type == "transcript":
                return event.data["text"], time.monotonic() - stopped
            if event.type == "error":
                raise RuntimeError(f"Wyoming error: {event.data}")
    raise RuntimeError("the Wyoming server closed without a transcript")


def over_grpc(target: str, model: str, pcm: bytes, pace: float) -> tuple[str, float]:
    """(the finals joined, seconds from the half-close to the call's end)."""
    half_closed = threading.Event()
    stopped = [0.0]
    spec = stt.RecognitionSpec(
        audio_encoding=stt.RecognitionSpec.LINEAR16_PCM, sample_rate_hertz=RATE, language_code="en-US", model=model
    )

    def requests():
        yield stt.StreamingRecognitionRequest(config=stt.RecognitionConfig(specification=spec))
        started = time.monotonic()
        for index, start in enumerate(range(0, len(pcm), CHUNK_BYTES)):
            time.sleep(max(0.0, started + index * CHUNK_S / pace - time.monotonic()))
            yield stt.StreamingRecognitionRequest(audio_content=pcm[start : start + CHUNK_BYTES])
        stopped[0] = time.monotonic()
        half_closed.set()

    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        texts = [
            chunk.alternatives[0].text
            for response in stt_grpc.SttServiceStub(channel).StreamingRecognize(requests(), timeout=120)
            for chunk in response.chunks
            if chunk.final
        ]
        ended = time.monotonic()
    assert half_closed.is_set()
    return " ".join(texts), ended - stopped[0]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(server: ServeProcess, uri: str, model: str, phrases: list[bytes], rounds: int, pace: float) -> dict:
    over_wyoming_ = lambda pcm: asyncio.run(over_wyoming(uri, model, pcm, pace))
    over_grpc_ = lambda pcm: over_grpc(server.target, model, pcm, pace)
    over_wyoming_(phrases[0])  # warm-up: a first decoder's load is not recognition
    over_grpc_(phrases[0])
    latencies: dict[str, list[float]] = {"wyoming": [], "v2": []}
    failures: dict[str, list[str]] = {"wyoming": [], "v2": []}
    agree = compared = 0
    for round_index in range(rounds):
        for pcm in phrases:
            order = [("wyoming", over_wyoming_), ("v2", over_grpc_)]
            texts = {}
            for api, send in order if round_index % 2 == 0 else order[::-1]:
                try:
                    texts[api], latency = send(pcm)
                except (RuntimeError, grpc.RpcError) as error:  # counted, not averaged: one failure ends no run
                    failures[api].append(str(error.details() if isinstance(error, grpc.RpcError) else error))
                    continue
                latencies[api].append(latency)
            if len(texts) == 2:
                compared += 1
                agree += texts["wyoming"] == texts["v2"]
    row: dict = {
        "model": model,
        "requests_per_api": rounds * len(phrases),
        "agree": f"{agree}/{compared}",
        "failures": failures,
    }
    for api, values in latencies.items():
        row[api] = (
            {
                "p50_ms": round(1000 * percentile(values, 50), 1),
                "p95_ms": round(1000 * percentile(values, 95), 1),
                "max_ms": round(1000 * max(values), 1),
            }
            if values
            else {}
        )
    print(
        f"{model:>17}: Wyoming p50 {row['wyoming'].get('p50_ms')} ms, p95 {row['wyoming'].get('p95_ms')} ms | v2 API "
        f"p50 {row['v2'].get('p50_ms')} ms, p95 {row['v2'].get('p95_ms')} ms ({row['requests_per_api']} requests "
        f"each; same text {row['agree']}; failed {len(failures['wyoming'])} / {len(failures['v2'])}); load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each phrase is sent over each API (default 3)")
    parser.add_argument("--pace", type=float, default=1.0, help="audio seconds sent per second (default 1: real time)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
        "rounds": args.rounds,
        "pace": args.pace,
        "chunk_ms": round(1000 * CHUNK_S),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        phrases = [synthesize(text, voice, workdir) for voice, text in PHRASES]
        uri = f"tcp://127.0.0.1:{free_port()}"
        section = server_section(4)
        section["models"][WHISPER_MODEL] = {"commands_files": [str(ROOT / "config/commands.yaml")], "engine": "whisper"}
        server = ServeProcess(workdir, section, args=("--wyoming", uri))
        try:
            results["models"] = [measure(server, uri, model, phrases, args.rounds, args.pace) for model in args.models]
        finally:
            server.stop()
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
