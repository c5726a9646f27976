"""Packetize each shared packet once for every viewer.

aiortc's `RTCRtpSender` hands a `Packet` returned by its track to its encoder's `pack()`,
which copies the bytes and splits them into RTP payloads: the same work for every viewer of
a rendition (aiortc/rtcrtpsender.py `_next_encoded_frame`, codecs/vpx.py `_packetize`,
codecs/h264.py `_packetize`). Here the payloads are made once per packet, and each viewer's
sender is given a `PrepackedEncoder` whose `pack()` just returns them.

Installing it touches a private attribute of `RTCRtpSender` (`__encoder`, created lazily
when None). `install` checks the attribute exists and reports whether it worked; if a future
aiortc renames it, viewers fall back to returning plain `av.Packet`s (correct, a little
slower).
"""

from __future__ import annotations

import random
from typing import Any

from aiortc import RTCRtpSender
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

SENDER_ENCODER_ATTRIBUTE = "_RTCRtpSender__encoder"


class Payloads:
    """RTP payloads of one packet and its 90 kHz timestamp, shared by all viewers."""

    __slots__ = ("payloads", "timestamp")

    def __init__(self, payloads: list[bytes], timestamp: int) -> None:
        self.payloads = payloads
        self.timestamp = timestamp


class FeedPacketizer:
    """Makes the payloads of one rendition's packets (VP8: RFC 7741; H.264: RFC 6184
    single NAL / STAP-A / FU-A, exactly as aiortc would)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def payloads(self, data: bytes, timestamp: int) -> Payloads:
        if self.codec == "VP8":
            chunks = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        else:
            chunks = H264Encoder._packetize(H264Encoder._split_bitstream(data))
        return Payloads(chunks, timestamp)


class PrepackedEncoder(Encoder):
    """A sender "encoder" that returns payloads made beforehand (and packs a plain
    `av.Packet` the usual way, for the few queued before it was installed)."""

    def __init__(self, codec: str) -> None:
        self._fallback: Encoder = Vp8Encoder() if codec == "VP8" else H264Encoder()

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a prepacked sender is given packets, never frames")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        if isinstance(packet, Payloads):
            return packet.payloads, packet.timestamp
        return self._fallback.pack(packet)


def install(sender: RTCRtpSender, codec: str) -> bool:
    """Make `sender` take `Payloads` from its track. False when aiortc's internals differ
    (then the track must return `av.Packet`s)."""
    if not hasattr(sender, SENDER_ENCODER_ATTRIBUTE):
        return False
    setattr(sender, SENDER_ENCODER_ATTRIBUTE, PrepackedEncoder(codec))
    return True
