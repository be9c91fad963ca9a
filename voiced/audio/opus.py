"""Ogg Opus (RFC 7845) in pieces: 16-bit mono PCM to Ogg pages as it arrives, and back.

libopus does the coding, reached through PyAV (the `opus` extra: its wheels bundle FFmpeg
built with libopus). The Ogg framing (RFC 3533) is the few lines here rather than FFmpeg's
Ogg (de)muxer, because that one wants a whole readable file, while a streaming session gets
the stream as gRPC messages that may cut a page anywhere and must answer as they arrive.

No I/O: `OggOpusEncoder.encode(pcm)` returns the bytes to send now, `.flush()` the end of
the stream; `OggOpusDecoder.decode(piece)` returns the PCM that piece completes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# PyAV (with its FFmpeg, ~15 MB) is imported at the first Ogg Opus stream, not by every
# process that might see one: most sessions are LINEAR16
av: Any = None

OPUS_RATE = 48000  # granule positions count 48 kHz samples, and libopus decodes to it here
ENCODER_RATES = (8000, 12000, 16000, 24000, 48000)
# VBR with libopus's VoIP tuning. At 24 kbit/s the recognizer's word error rate is that of
# LINEAR16 (bench/bench_opus.py) at 1/13 of the bytes of 16 kHz PCM; 8 kHz input carries
# half the band, and 12 kbit/s keeps it 1/11 of its PCM without losing words.
DEFAULT_BITRATE = 24000
NARROWBAND_BITRATE = 12000


def default_bitrate(sample_rate: int) -> int:
    return NARROWBAND_BITRATE if sample_rate <= 8000 else DEFAULT_BITRATE


FRAME_MS = 20
VENDOR = b"voiced"
MAX_PACKET = 1 << 20  # a packet spread over more pages than this is garbage (tags included)

_BOS, _EOS, _CONTINUED = 0x02, 0x04, 0x01
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments


class OpusUnavailable(ImportError):
    """PyAV (the `opus` extra) is not installed."""


class OggOpusError(ValueError):
    """The bytes are not a (supported) Ogg Opus stream; the message says what is wrong."""


def available() -> bool:
    return av is not None or importlib.util.find_spec("av") is not None


def _require_av() -> None:
    global av
    if av is None:
        try:
            av = importlib.import_module("av")
        except ImportError:
            raise OpusUnavailable(
                "Ogg Opus needs PyAV, the optional 'opus' extra: pip install 'voiced[opus]'"
            ) from None


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, zero start (unlike zlib's)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def ogg_page(packets: list[bytes], *, serial: int, sequence: int, granule: int, flags: int = 0) -> bytes:
    """One page holding whole packets (at most 255 lacing values: the caller splits)."""
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    if len(lacing) > 255:
        raise ValueError("too many packets for one Ogg page")
    header = _HEADER.pack(b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing)) + bytes(lacing)
    page = bytearray(header + b"".join(packets))
    page[22:26] = struct.pack("<I", ogg_crc(page))
    return bytes(page)


def _lacing_size(packet: bytes) -> int:
    return len(packet) // 255 + 1


@dataclass(frozen=True)
class OggPage:
    flags: int
    granule: int
    serial: int
    sequence: int
    packets: tuple[bytes, ...]  # packets that end on this page (the first may have begun earlier)

    @property
    def bos(self) -> bool:
        return bool(self.flags & _BOS)

    @property
    def eos(self) -> bool:
        return bool(self.flags & _EOS)


class OggPageReader:
    """Ogg pages out of bytes split anywhere; a packet spread over pages comes out whole."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._partial: bytearray | None = None  # a packet continued on the next page
        self._offset = 0  # of the buffer's start in the stream, for error messages

    def feed(self, data: bytes) -> list[OggPage]:
        self._buffer += data
        pages = []
        while (page := self._next_page()) is not None:
            pages.append(page)
        return pages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete page held back."""
        return len(self._buffer)

    def _next_page(self) -> OggPage | None:
        buffer = self._buffer
        if bytes(buffer[:4]) != b"OggS"[: len(buffer)]:  # no resync: a stream sent in order has no junk
            raise OggOpusError(
                f"not an Ogg stream: no 'OggS' page at byte {self._offset} (starts with {bytes(buffer[:8])!r})"
            )
        if len(buffer) < _HEADER.size:
            return None
        _, version, flags, granule, serial, sequence, crc, count = _HEADER.unpack_from(buffer)
        if version != 0:
            raise OggOpusError(f"Ogg page at byte {self._offset} has version {version}, only 0 exists")
        body_start = _HEADER.size + count
        if len(buffer) < body_start:
            return None
        lacing = buffer[_HEADER.size : body_start]
        end = body_start + sum(lacing)
        if len(buffer) < end:
            return None
        page = bytearray(buffer[:end])
        page[22:26] = b"\0\0\0\0"
        if ogg_crc(page) != crc:
            raise OggOpusError(f"Ogg page at byte {self._offset} fails its CRC check: the stream is corrupt")
        del self._buffer[:end]
        self._offset += end
        return OggPage(flags, granule, serial, sequence, self._packets(flags, lacing, page[body_start:]))

    def _packets(self, flags: int, lacing: bytes, body: bytes) -> tuple[bytes, ...]:
        continued = bool(flags & _CONTINUED)
        # a continuation whose beginning was lost (or a beginning whose end was) is dropped, as libogg does
        dropping = continued and self._partial is None
        current = self._partial if continued and self._partial is not None else bytearray()
        packets, position = [], 0
        for size in lacing:
            current += body[position : position + size]
            position += size
            if len(current) > MAX_PACKET:
                raise OggOpusError(f"an Ogg packet longer than {MAX_PACKET} bytes: not an Opus stream")
            if size < 255:
                if not dropping:
                    packets.append(bytes(current))
                dropping = False
                current = bytearray()
        self._partial = current if lacing and lacing[-1] == 255 and not dropping else None
        return tuple(packets)


def opus_head(pre_skip: int, input_rate: int) -> bytes:
    """OpusHead for one mono stream (channel mapping family 0)."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, input_rate, 0, 0)


def opus_tags(vendor: bytes = VENDOR) -> bytes:
    return b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)


class OggOpusEncoder:
    """16-bit mono PCM at `sample_rate` in, an Ogg Opus stream out, one page per call."""

    def __init__(self, sample_rate: int, bitrate: int | None = None, serial: int | None = None):
        _require_av()
        if sample_rate not in ENCODER_RATES:
            raise ValueError(f"Opus encodes {ENCODER_RATES} Hz, not {sample_rate}")
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = sample_rate
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bitrate or default_bitrate(sample_rate)
        codec.options = {"application": "voip", "frame_duration": str(FRAME_MS)}
        codec.open()
        self._codec = codec
        self._rate = sample_rate
        self._scale = OPUS_RATE // sample_rate  # input samples -> 48 kHz granule units
        self._frame_bytes = codec.frame_size * 2
        self._pre_skip = struct.unpack_from("<H", codec.extradata, 10)[0]  # 48 kHz samples
        self._serial = serial if serial is not None else int.from_bytes(os.urandom(4), "little")
        self._sequence = 0
        self._pending = b""  # less than a frame of input
        self._samples_in = 0
        self._granule = 0
        self._headers_sent = False
        self.finished = False

    def encode(self, pcm: bytes) -> bytes:
        """The pages completed by `pcm` (the stream's header pages come with the first call)."""
        if self.finished:
            raise RuntimeError("encode() after flush()")
        data = self._pending + pcm[: len(pcm) // 2 * 2]
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        packets = []
        for start in range(0, whole, self._frame_bytes):
            packets += self._encode_frame(data[start : start + self._frame_bytes])
        return self._headers() + self._pages(packets, final=False)

    def flush(self) -> bytes:
        """The rest of the stream, ending it: the last page's granule trims the codec's padding."""
        if self.finished:
            return b""
        self.finished = True
        packets = self._encode_frame(self._pending) if self._pending else []
        packets += [bytes(packet) for packet in self._codec.encode(None)]
        return self._headers() + self._pages(packets, final=True)

    def _encode_frame(self, pcm: bytes) -> list[bytes]:
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._samples_in
        self._samples_in += samples.shape[1]
        return [bytes(packet) for packet in self._codec.encode(frame)]

    def _headers(self) -> bytes:
        if self._headers_sent:
            return b""
        self._headers_sent = True
        # OpusHead alone on the first page, OpusTags ending the second (RFC 7845 section 3)
        return self._page([opus_head(self._pre_skip, self._rate)], granule=0, flags=_BOS) + self._page(
            [opus_tags()], granule=0
        )

    def _pages(self, packets: list[bytes], final: bool) -> bytes:
        """Whole packets on as few pages as lacing allows; none at all unless there are packets or it ends."""
        out = b""
        while packets or final:
            count, lacing = 0, 0
            while count < len(packets) and lacing + _lacing_size(packets[count]) <= 255:
                lacing += _lacing_size(packets[count])
                count += 1
            page, packets = packets[:count], packets[count:]
            # a page's granule counts every sample decoded up to its last packet, pre-skip included
            self._granule += len(page) * FRAME_MS * OPUS_RATE // 1000
            if final and not packets:
                # the end: only the samples given, not the padding of the last frame
                granule = min(self._granule, self._pre_skip + self._samples_in * self._scale)
                return out + self._page(page, granule=granule, flags=_EOS)
            out += self._page(page, granule=self._granule)
        return out

    def _page(self, packets: list[bytes], granule: int, flags: int = 0) -> bytes:
        page = ogg_page(packets, serial=self._serial, sequence=self._sequence, granule=granule, flags=flags)
        self._sequence += 1
        return page


@dataclass
class _Stream:
    serial: int
    codec: Any = None  # the libopus decoder, once OpusHead has been read
    pre_skip: int = 0
    tags_read: bool = False
    decoded: int = 0  # samples output, after pre-skip


class OggOpusDecoder:
    """An Ogg Opus stream in pieces split anywhere, 16-bit mono PCM at OPUS_RATE out.

    One mono Opus stream at a time; a chained stream (a new one after the last one's end)
    goes on seamlessly. Anything else raises OggOpusError, whose message suits the client."""

    rate = OPUS_RATE

    def __init__(self) -> None:
        _require_av()
        self._reader = OggPageReader()
        self._stream: _Stream | None = None
        self._ended = False  # the last stream's EOS page was read

    @property
    def pending(self) -> int:
        """Bytes of an incomplete page held back (a stream cut short leaves some)."""
        return self._reader.pending

    def decode(self, piece: bytes) -> bytes:
        return b"".join(self._page(page) for page in self._reader.feed(piece))

    def _page(self, page: OggPage) -> bytes:
        stream = self._stream
        if page.bos:
            if stream is not None and not self._ended:
                raise OggOpusError("a second Ogg stream begins inside the first: multiplexed streams are not supported")
            stream = self._stream = _Stream(page.serial)
            self._ended = False
        elif stream is None:
            raise OggOpusError("the Ogg stream does not begin with its first page (no beginning-of-stream flag)")
        elif self._ended:
            raise OggOpusError("an Ogg page after the end of the stream that is not the start of a new one")
        elif page.serial != stream.serial:
            raise OggOpusError("Ogg pages of another stream: multiplexed streams are not supported")
        pcm = b"".join(self._packet(stream, packet) for packet in page.packets)
        if page.eos:
            self._ended = True
            # the last page's granule says where the audio ends: drop the codec's padding after it
            excess = stream.decoded - max(0, page.granule - stream.pre_skip)
            if excess > 0:
                pcm = pcm[: max(0, len(pcm) - 2 * excess)]
                stream.decoded -= excess
        return pcm

    def _packet(self, stream: _Stream, packet: bytes) -> bytes:
        if stream.codec is None:
            stream.codec = self._open(packet)
            stream.pre_skip = struct.unpack_from("<H", packet, 10)[0]
            return b""
        if not stream.tags_read:
            if not packet.startswith(b"OpusTags"):
                raise OggOpusError("the second Ogg Opus packet must be OpusTags")
            stream.tags_read = True
            return b""
        try:
            frames = stream.codec.decode(av.Packet(packet))
        except av.FFmpegError as exc:
            raise OggOpusError(f"an Opus packet does not decode: {exc}") from None
        pcm = b"".join(frame.to_ndarray().tobytes() for frame in frames)
        stream.decoded += len(pcm) // 2
        return pcm

    @staticmethod
    def _open(head: bytes):
        if not head.startswith(b"OpusHead") or len(head) < 19:
            raise OggOpusError(f"not an Ogg Opus stream: the first packet is {head[:8]!r}, not OpusHead")
        version, channels, _pre_skip, _rate, _gain, family = struct.unpack_from("<BBHIhB", head, 8)
        if version >> 4:
            raise OggOpusError(f"OpusHead version {version} is not supported (only 0.x)")
        if channels != 1 or family != 0:
            raise OggOpusError(f"the Opus stream has {channels} channels: audio must be mono (1)")
        codec = av.CodecContext.create("libopus", "r")
        codec.extradata = head  # libopus gets pre-skip and gain from it
        return codec
