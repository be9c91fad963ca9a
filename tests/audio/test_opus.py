"""Ogg Opus: the codec against libopus's stock tools, and OGG_OPUS end to end through `voiced serve`."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import grpc
import numpy as np
import pytest
import soxr

from voiced.audio.opus import (
    OPUS_RATE,
    OggOpusDecoder,
    OggOpusEncoder,
    OggOpusError,
    OggPageReader,
    ogg_crc,
    ogg_page,
    opus_head,
)
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2 as stt
from voiced.proto.yandex.cloud.ai.stt.v2 import stt_service_pb2_grpc as stt_grpc
from voiced.protocol.results import Final
from voiced.speechkit.client import SpeechKitClient
from voiced.speechkit.config import RecognitionSettings
from voiced.testing import read_pcm, silence

TEXT = "turn on the kitchen lights"


def encode_in_pieces(pcm: bytes, rate: int, piece_s: float = 0.1) -> list[bytes]:
    """What a client sends: one encode() per captured piece, then the flush."""
    encoder = OggOpusEncoder(rate)
    step = int(rate * piece_s) * 2
    return [encoder.encode(pcm[i : i + step]) for i in range(0, len(pcm), step)] + [encoder.flush()]


def split_anywhere(data: bytes, seed: int, max_piece: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(data):
        size = rng.randint(1, max_piece)
        pieces.append(data[start : start + size])
        start += size
    return pieces


def decode_all(pieces: list[bytes]) -> np.ndarray:
    decoder = OggOpusDecoder()
    return np.frombuffer(b"".join(decoder.decode(piece) for piece in pieces), np.int16)


def similarity(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 48) -> float:
    """Best correlation within +-1 ms at 48 kHz (libopus's 16 kHz path delays a few samples)."""
    reference, decoded = reference.astype(float), decoded.astype(float)
    n = min(len(reference), len(decoded)) - 2 * max_lag
    return max(
        np.corrcoef(reference[max_lag : max_lag + n], decoded[max_lag + lag : max_lag + lag + n])[0, 1]
        for lag in range(-max_lag, max_lag + 1, 2)
    )


def at_48k(pcm: bytes, rate: int) -> np.ndarray:
    samples = np.frombuffer(pcm, np.int16)
    return samples if rate == OPUS_RATE else soxr.resample(samples, rate, OPUS_RATE)


def wav_samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, OPUS_RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_round_trip_keeps_length_and_waveform(speech, rate):
    pcm, _ = read_pcm(speech(TEXT, "flite:slt", rate))
    decoded = decode_all(split_anywhere(b"".join(encode_in_pieces(pcm, rate)), seed=rate, max_piece=700))
    # pre-skip and the last page's granule cut the codec's delay and padding exactly
    assert len(decoded) == len(pcm) // 2 * OPUS_RATE // rate
    assert similarity(at_48k(pcm, rate), decoded) > 0.85


def test_stream_decodes_with_the_stock_decoder_as_with_ours(speech, tmp_path):
    pcm, _ = read_pcm(speech(TEXT, "flite:slt", 16000))
    stream = b"".join(encode_in_pieces(pcm, 16000))
    (tmp_path / "ours.opus").write_bytes(stream)
    info = subprocess.run(["opusinfo", str(tmp_path / "ours.opus")], capture_output=True, text=True, check=True)
    assert "WARNING" not in info.stdout + info.stderr and "Channels: 1" in info.stdout, info.stdout
    subprocess.run(
        ["opusdec", "--quiet", "--rate", "48000", str(tmp_path / "ours.opus"), str(tmp_path / "out.wav")],
        check=True,
        capture_output=True,
    )
    stock = wav_samples(tmp_path / "out.wav")
    ours = decode_all([stream])
    assert len(stock) == len(ours) == len(pcm) // 2 * 3
    # same libopus, same trimming: the same audio up to opusdec's dither
    assert np.corrcoef(stock.astype(float), ours.astype(float))[0, 1] > 0.99


def test_a_long_piece_is_spread_over_pages_of_at_most_255_packets():
    pcm = np.random.default_rng(1).integers(-3000, 3000, 16000 * 8, dtype=np.int16).tobytes()  # 400 frames
    encoder = OggOpusEncoder(16000)
    stream = encoder.encode(pcm) + encoder.flush()
    pages = OggPageReader().feed(stream)
    assert [len(page.packets) for page in pages] == [1, 1, 255, 145, 1]  # the flush: the lookahead's frame
    assert pages[-1].eos and pages[-1].granule == 312 + 8 * 48000
    assert len(decode_all([stream])) == 8 * 48000


def test_opusenc_file_decodes_in_any_split(speech, tmp_path):
    wav = speech(TEXT, "flite:awb", 16000)
    opus_file = tmp_path / "speech.opus"
    subprocess.run(["opusenc", "--quiet", "--bitrate", "16", str(wav), str(opus_file)], check=True)
    data = opus_file.read_bytes()
    pcm, _ = read_pcm(wav)
    whole = decode_all([data])
    assert len(whole) == len(pcm) // 2 * 3
    assert similarity(at_48k(pcm, 16000), whole) > 0.85
    for seed, max_piece in [(1, 1), (2, 30), (3, 300), (4, 5000)]:
        assert np.array_equal(decode_all(split_anywhere(data, seed, max_piece)), whole), (seed, max_piece)


def raw_page(lacing: list[int], body: bytes, *, sequence: int, flags: int = 0, granule: int = -1) -> bytes:
    """A page laced by hand, so a packet can be cut across pages (the encoder never needs to)."""
    page = bytearray(struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 7, sequence, 0, len(lacing)))
    page += bytes(lacing) + body
    page[22:26] = struct.pack("<I", ogg_crc(page))
    return bytes(page)


def test_a_packet_spanning_pages_comes_out_whole():
    small, whole, tail = b"a" * 10, bytes(range(256)) * 2 + b"z" * 88, b"end"  # whole: 600 = 255 + 255 + 90
    stream = (
        ogg_page([small], serial=7, sequence=0, granule=0)
        + raw_page([255], whole[:255], sequence=1)
        + raw_page([255, 90, 3], whole[255:] + tail, sequence=2, flags=1, granule=960)
    )
    reader = OggPageReader()
    pages = [page for piece in split_anywhere(stream, seed=2, max_piece=50) for page in reader.feed(piece)]
    assert [page.packets for page in pages] == [(small,), (), (whole, tail)]
    assert (pages[2].granule, reader.pending) == (960, 0)
    # a continuation whose beginning was never seen is dropped, as libogg does
    assert OggPageReader().feed(stream[len(ogg_page([small], serial=7, sequence=0, granule=0)) + 283 :])[0].packets == (
        tail,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not an Ogg stream"),
        (bytes(range(256)) * 4, "not an Ogg stream"),
        (ogg_page([b"OpusHead"], serial=1, sequence=0, granule=0, flags=2)[:-1] + b"X", "CRC"),
        (ogg_page([b"hello world"], serial=1, sequence=0, granule=0, flags=2), "OpusHead"),
        (
            ogg_page(
                [opus_head(312, 16000)[:9] + b"\x02" + opus_head(312, 16000)[10:]],
                serial=1,
                sequence=0,
                granule=0,
                flags=2,
            ),
            "mono",
        ),
        (ogg_page([opus_head(312, 16000)], serial=1, sequence=0, granule=0), "beginning-of-stream"),
    ],
)
def test_what_is_not_a_mono_ogg_opus_stream_is_refused_clearly(data, message):
    with pytest.raises(OggOpusError, match=message):
        decode_all(split_anywhere(data, seed=5, max_piece=64))


def test_a_corrupt_opus_packet_is_an_error_not_a_crash():
    encoder = OggOpusEncoder(16000, serial=9)
    headers = encoder.encode(b"")
    bad = ogg_page([b"\xff" * 3], serial=9, sequence=2, granule=960)  # code 3 packet with no frame count
    with pytest.raises(OggOpusError, match="does not decode"):
        decode_all([headers, bad])


# --- through the server -----------------------------------------------------------------------------------


def recognize(target: str, pcm: bytes, rate: int, encoding: str) -> list:
    settings = RecognitionSettings(sample_rate=rate, encoding=encoding, partial_results=False)
    with SpeechKitClient(settings, target) as client:
        session = client.session()
        step = rate // 10 * 2  # 100 ms, as the daemon sends
        for start in range(0, len(pcm), step):
            session.send(pcm[start : start + step])
        session.finish()
        return list(session.events())


@pytest.mark.parametrize(
    ("rate", "voice", "text"),
    [
        (16000, "flite:slt", TEXT),
        (48000, "flite:kal16", "open the garage door"),
    ],
)
def test_client_sends_ogg_opus_and_the_server_hears_what_linear16_gives(local_server, speech_pcm, rate, voice, text):
    pcm = speech_pcm(text, voice, rate)
    linear = recognize(local_server.target, pcm, rate, "LINEAR16_PCM")
    opus = recognize(local_server.target, pcm, rate, "OGG_OPUS")
    assert [e.text for e in opus] == [e.text for e in linear] == [text], (opus, linear)
    assert all(isinstance(e, Final) for e in opus)
    sent = sum(map(len, encode_in_pieces(pcm, rate)))  # the bytes the client's encoder made
    assert sent * 8 <= len(pcm), (sent, len(pcm))


def raw_call(
    target: str, pieces: list[bytes], encoding=stt.RecognitionSpec.OGG_OPUS
) -> tuple[list, grpc.RpcError | None]:
    """Pieces of audio_content as they are, straight on the wire (no client encoding)."""
    spec = stt.RecognitionSpec(language_code="en-US", audio_encoding=encoding)
    requests = [stt.StreamingRecognitionRequest(config=stt.RecognitionConfig(specification=spec))]
    requests += [stt.StreamingRecognitionRequest(audio_content=piece) for piece in pieces]
    with grpc.insecure_channel(target) as channel:
        texts = []
        try:
            for response in stt_grpc.SttServiceStub(channel).StreamingRecognize(iter(requests), timeout=60):
                texts += [c.alternatives[0].text for c in response.chunks if c.final]
        except grpc.RpcError as error:
            return texts, error
        return texts, None


def test_server_recognizes_an_opusenc_file_sent_in_arbitrary_splits(local_server, speech, tmp_path):
    padded = tmp_path / "padded.wav"
    subprocess.run(
        ["sox", str(speech("open the garage door", "flite:kal16", 16000)), str(padded), "pad", "0.5", "0.5"], check=True
    )
    opus_file = tmp_path / "speech.opus"
    subprocess.run(["opusenc", "--quiet", str(padded), str(opus_file)], check=True)
    data = opus_file.read_bytes()
    texts, error = raw_call(local_server.target, split_anywhere(data, seed=11, max_piece=900))
    assert error is None and texts == ["open the garage door"], (texts, error)


def test_garbage_as_ogg_opus_is_invalid_argument_and_the_server_goes_on(local_server, speech_pcm):
    garbage = bytes(random.Random(3).getrandbits(8) for _ in range(4000))
    _texts, error = raw_call(local_server.target, [garbage[:1000], garbage[1000:]])
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "OGG_OPUS" in error.details() and "not an Ogg stream" in error.details()
    pcm = speech_pcm(TEXT, "flite:slt", 16000)
    # a stream whose pages are cut short by corruption midway is refused the same way
    pieces = encode_in_pieces(pcm, 16000)
    broken = [*pieces[:5], pieces[5][:10] + b"\x00" * 40 + pieces[5][50:], *pieces[6:]]
    _, error = raw_call(local_server.target, broken)
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert [e.text for e in recognize(local_server.target, pcm, 16000, "OGG_OPUS")] == [TEXT]


def test_the_audio_limit_counts_decoded_seconds(speech_pcm):
    from voiced.server.app import start_server
    from voiced.server.config import ServerLimits, ServerSettings

    server = start_server(ServerSettings(limits=ServerLimits(max_audio_s=2.0)))
    try:
        pcm = speech_pcm(TEXT, "flite:slt", 16000, pad_s=1.0)  # ~3.6 s, in ~10 kB of Opus
        _, error = raw_call(server.target, encode_in_pieces(pcm, 16000))
    finally:
        server.stop()
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert "audio limit" in error.details()


SERVER_WITHOUT_PYAV = textwrap.dedent("""
    import sys
    sys.modules["av"] = None  # as if the `opus` extra were not installed
    from voiced.server.app import start_server
    from voiced.server.config import ServerSettings
    server = start_server(ServerSettings())
    print(server.target, flush=True)
    sys.stdin.read()
    server.stop()
""")


def test_without_the_opus_extra_the_server_says_what_to_install():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_WITHOUT_PYAV], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        target = process.stdout.readline().strip()
        assert target, "the server did not start"
        _, error = raw_call(target, [b"OggS"])
        _linear, linear_error = raw_call(target, [silence(0.2, 48000)], stt.RecognitionSpec.LINEAR16_PCM)
    finally:
        process.communicate("", timeout=30)
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "voiced[opus]" in error.details() and "LINEAR16_PCM" in error.details()
    assert linear_error is None, linear_error  # the rest of the server works without it
