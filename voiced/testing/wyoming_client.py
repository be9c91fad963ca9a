"""A Wyoming client for tests and benchmarks: the real `wyoming` library (AsyncTcpClient, the
event classes), as Home Assistant's Wyoming integration uses it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from voiced.server.config import tcp_address

CHUNK_BYTES = 2048  # 64 ms at 16 kHz, as Home Assistant sends it
TIMEOUT_S = 120.0  # of one exchange: it fails the test rather than hanging it


def request_events(
    pcm: bytes,
    rate: int = 16000,
    name: str | None = None,
    language: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    width: int = 2,
    channels: int = 1,
) -> list[Event]:
    """transcribe, audio-start, the audio in chunks, audio-stop."""
    chunks = [
        AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[start : start + chunk_bytes]).event()
        for start in range(0, len(pcm), chunk_bytes)
    ]
    return [
        Transcribe(name=name, language=language).event(),
        AudioStart(rate=rate, width=width, channels=channels).event(),
        *chunks,
        AudioStop().event(),
    ]


def answered(received: list[Event]) -> bool:
    """A request is answered by transcript-stop (transcript streaming), or an error."""
    return received[-1].type in ("transcript-stop", "error")


async def exchange_async(
    uri: str, events: list[Event], until: Callable[[list[Event]], bool] | None = None
) -> list[Event]:
    """Send `events` on a new connection, then read until `until(received)` or the server closes."""
    async with AsyncTcpClient(*tcp_address(uri)) as client:
        for event in events:
            await client.write_event(event)
        received: list[Event] = []
        while (event := await client.read_event()) is not None:
            received.append(event)
            if until is not None and until(received):
                break
        return received


def exchange(uri: str, events: list[Event], until: Callable[[list[Event]], bool] | None = answered) -> list[Event]:
    return asyncio.run(asyncio.wait_for(exchange_async(uri, events, until), TIMEOUT_S))


def transcript(received: list[Event]) -> str:
    texts = [event.data["text"] for event in received if event.type == "transcript"]
    assert len(texts) == 1, received
    return texts[0]
