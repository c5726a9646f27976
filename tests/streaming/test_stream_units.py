"""Pure parts of `streaming`: fan-out rules, keyframe policy, signaling parser, overlay clock
strip, evidence format and verification. No event loop, no sockets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_kit import REPO

from streaming.errors import (
    BadOffer,
    ConfigurationError,
    ExpectedChainBroken,
    OfferTooLarge,
    SegmentAltered,
    SegmentMalformed,
    SegmentMissing,
    SegmentOutOfOrder,
    SignalingError,
    UnexpectedSegment,
    UnsupportedMediaType,
)
from streaming.evidence import (
    FinishedSegment,
    SegmentChain,
    SegmentDigest,
    SegmentPacket,
    parse_segment,
    verify_digests,
)
from streaming.fanout import DropToKeyframeQueue, KeyframePolicy, PushOutcome
from streaming.model import (
    GENESIS_SHA256,
    ExpectedSegment,
    OverlayState,
    Rendition,
    overlay_lines,
    time_left_words,
)
from streaming.overlay import (
    STRIP_BLOCKS,
    OverlayRenderer,
    decode_strip,
    sample_strip,
    strip_bits,
)
from streaming.settings import StreamSettings
from streaming.signaling import (
    bearer_token,
    check_content_type,
    check_publisher_offer,
    check_viewer_offer,
    choose_rendition,
    filter_candidates,
    is_loopback_address,
    parse_channel_message,
    parse_offer,
)

VIEWER_SDP = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
    "a=candidate:2 1 udp 2130706431 10.1.2.3 5001 typ host\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
)


# --- fan-out queue -----------------------------------------------------------------------------


def test_a_new_viewer_starts_at_a_keyframe() -> None:
    queue: DropToKeyframeQueue[str] = DropToKeyframeQueue(4)
    assert queue.push("d0", is_keyframe=False) is PushOutcome.SKIPPED
    assert queue.push("k1", is_keyframe=True) is PushOutcome.QUEUED
    assert queue.push("d1", is_keyframe=False) is PushOutcome.QUEUED
    assert [queue.pop(), queue.pop(), queue.pop()] == ["k1", "d1", None]


def test_a_full_queue_drops_to_the_next_keyframe() -> None:
    queue: DropToKeyframeQueue[str] = DropToKeyframeQueue(3)
    queue.push("k0", is_keyframe=True)
    queue.push("d1", is_keyframe=False)
    queue.push("d2", is_keyframe=False)
    assert queue.push("d3", is_keyframe=False) is PushOutcome.OVERFLOWED
    assert len(queue) == 0 and queue.waiting_for_keyframe and queue.overflows == 1
    assert queue.push("d4", is_keyframe=False) is PushOutcome.SKIPPED
    assert queue.push("k5", is_keyframe=True) is PushOutcome.QUEUED
    assert queue.pop() == "k5"
    assert queue.dropped == 5  # k0 d1 d2 d3 d4


def test_a_keyframe_skips_a_full_queue_ahead() -> None:
    queue: DropToKeyframeQueue[str] = DropToKeyframeQueue(2)
    queue.push("k0", is_keyframe=True)
    queue.push("d1", is_keyframe=False)
    assert queue.push("k2", is_keyframe=True) is PushOutcome.QUEUED
    assert [queue.pop(), queue.pop()] == ["k2", None]


@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), max_size=300),
    st.integers(min_value=2, max_value=8),
)
def test_queue_properties(steps: list[tuple[bool, bool]], capacity: int) -> None:
    """Whatever happens, the queue is bounded, every delivery run starts with a keyframe, and
    packets come out in the order they went in."""
    queue: DropToKeyframeQueue[tuple[int, bool]] = DropToKeyframeQueue(capacity)
    delivered: list[tuple[int, bool]] = []
    for number, (is_keyframe, read) in enumerate(steps):
        queue.push((number, is_keyframe), is_keyframe=is_keyframe)
        assert len(queue) <= capacity
        if read:
            item = queue.pop()
            if item is not None:
                delivered.append(item)
    assert [n for n, _ in delivered] == sorted(n for n, _ in delivered)
    if delivered:
        assert delivered[0][1], "the first delivered packet must be a keyframe"
    for before, after in zip(delivered, delivered[1:], strict=False):
        if after[0] != before[0] + 1:  # a gap: the decoder may only resume at a keyframe
            assert after[1]


# --- keyframe policy ---------------------------------------------------------------------------


def test_keyframe_policy_periodic_requested_and_rate_limited() -> None:
    policy = KeyframePolicy(min_interval_us=500_000, max_interval_us=2_000_000)
    assert policy.should_force(0)  # the very first frame
    policy.emitted(0, is_keyframe=True)
    assert not policy.should_force(33_000)
    for _ in range(50):  # a storm of requests (many viewers joining or sending PLI)
        policy.request()
    assert not policy.should_force(100_000)  # rate-limited...
    assert policy.should_force(500_000)  # ...but granted after the minimum interval
    policy.emitted(500_000, is_keyframe=True)
    assert policy.forced == 1 and not policy.pending
    assert not policy.should_force(2_400_000)
    assert policy.should_force(2_500_000)  # periodic


def test_keyframe_policy_answers_overflow_slower() -> None:
    policy = KeyframePolicy(
        min_interval_us=500_000, max_interval_us=10_000_000, overflow_interval_us=1_000_000
    )
    policy.emitted(0, is_keyframe=True)
    policy.request(overflow=True)  # a viewer fell behind: the server may be overloaded
    assert not policy.should_force(600_000)
    assert policy.should_force(1_000_000)
    policy.emitted(1_000_000, is_keyframe=True)
    policy.request()  # a viewer joined: it cannot decode anything until a keyframe
    assert policy.should_force(1_500_000)


def test_keyframe_policy_rejects_bad_intervals() -> None:
    with pytest.raises(ConfigurationError):
        KeyframePolicy(min_interval_us=3, max_interval_us=2)


# --- signaling ---------------------------------------------------------------------------------


def test_parse_a_viewer_offer() -> None:
    body = json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode()
    offer = parse_offer(body, max_bytes=65536)
    assert offer.video_directions == ("recvonly",) and offer.has_data_channel
    check_viewer_offer(offer)
    with pytest.raises(BadOffer) as caught:
        check_publisher_offer(offer)
    assert caught.value.code == "WRONG_DIRECTION"


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        (b"not json", BadOffer, "BAD_JSON"),
        (b"\xff\xfe", BadOffer, "BAD_JSON"),
        (b"[1, 2]", BadOffer, "BAD_OFFER"),
        (json.dumps({"sdp": VIEWER_SDP, "type": "answer"}).encode(), BadOffer, "WRONG_TYPE"),
        (json.dumps({"type": "offer"}).encode(), BadOffer, "BAD_SDP"),
        (json.dumps({"sdp": "hello", "type": "offer"}).encode(), BadOffer, "BAD_SDP"),
        (
            json.dumps({"sdp": "v=0\r\nm=audio 9 RTP 0\r\n", "type": "offer"}).encode(),
            BadOffer,
            "NO_VIDEO",
        ),
        (b"[" * 100_000, OfferTooLarge, "OFFER_TOO_LARGE"),
    ],
)
def test_refused_offers(body: bytes, error: type[SignalingError], code: str) -> None:
    with pytest.raises(error) as caught:
        parse_offer(body, max_bytes=65536)
    assert caught.value.code == code


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_parse_offer_only_raises_documented_errors(body: bytes) -> None:
    try:
        parse_offer(body, max_bytes=1024)
    except SignalingError:
        pass


@given(st.text(max_size=500))
def test_channel_messages_never_raise(text: str) -> None:
    parse_channel_message(text)
    parse_channel_message(text.encode("utf-8", "surrogatepass"))


def test_small_signaling_helpers() -> None:
    check_content_type("application/json; charset=utf-8")
    with pytest.raises(UnsupportedMediaType):
        check_content_type("text/plain")
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None
    assert choose_rendition(None, ["360p", "720p"], "360p") == "360p"
    assert choose_rendition("720p", ["360p", "720p"], "360p") == "720p"
    with pytest.raises(BadOffer):
        choose_rendition("4k", ["360p"], "360p")
    filtered = filter_candidates(VIEWER_SDP, is_loopback_address)
    assert "127.0.0.1 5000" in filtered and "10.1.2.3" not in filtered
    assert parse_channel_message('{"type": "rendition", "name": "720p"}') is not None
    assert parse_channel_message('{"type": "other"}') is None


# --- values and settings -----------------------------------------------------------------------


def test_overlay_state_and_lines() -> None:
    state = OverlayState(
        seq=7,
        server_ts_ms=1_000,
        title="Flat 1502",
        price_text="¥2,020,000",
        phase="OPEN",
        leader_code="C01",
        ends_at_ms=1_000 + 75_500,
        extended=True,
    )
    assert overlay_lines(state, 1_000) == (
        "Flat 1502",
        "¥2,020,000  ·  leader C01  ·  1:16 left  ·  EXTENDED  ·  OPEN",
    )
    assert state.time_left_s(10**9) == 0
    assert [time_left_words(s) for s in (65, 3 * 3600 + 65, 59 * 86_400 + 23 * 3600 + 3599)] == [
        "1:05",
        "3:01:05",
        "59d 23h",
    ]
    room = OverlayState(
        seq=8,
        server_ts_ms=0,
        title="Flat 9",
        price_text="£280,000",
        phase="In the ring",
        leader_code="floor:125",
    )
    assert overlay_lines(room, 0)[1] == "£280,000  ·  leader paddle 125 in the room  ·  In the ring"
    with pytest.raises(ConfigurationError):
        OverlayState(seq=-1, server_ts_ms=0, title="", price_text="", phase="")
    with pytest.raises(ConfigurationError):
        OverlayState(seq=0, server_ts_ms=0, title="x" * 500, price_text="", phase="")


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        StreamSettings(default_rendition="1080p")
    with pytest.raises(ConfigurationError):
        Rendition("720p", 1281, 720, 1_000_000)
    with pytest.raises(ConfigurationError):
        StreamSettings(max_sdp_bytes=10)


# --- overlay -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(640, 360), (854, 480), (1280, 720)])
def test_clock_strip_round_trip(width: int, height: int) -> None:
    y = np.full((height, width), 90, dtype=np.uint8)
    u = np.full((height // 2, width // 2), 90, dtype=np.uint8)
    v = u.copy()
    renderer = OverlayRenderer(width, height)
    capture_ms = 1_795_608_918_640
    state = OverlayState(seq=1, server_ts_ms=0, title="T", price_text="£1", phase="OPEN")
    renderer.apply(y, u, v, state, capture_ms)
    assert decode_strip(sample_strip(y), capture_ms + 400) == capture_ms
    assert y[: renderer.banner_rows].max() >= 200  # white text on the dimmed band
    assert (u[: renderer.banner_rows // 2] == 128).all()
    renderer.apply(y, u, v, state, capture_ms + 33)
    assert renderer.renders == 1  # the text is drawn once per change, not per frame


def test_clock_strip_absent_or_wrapping() -> None:
    assert decode_strip([0] * STRIP_BLOCKS, 0) is None
    assert decode_strip([255] * 3, 0) is None
    near_wrap = (1 << 32) * 400 + (1 << 32) - 5
    bits = strip_bits(near_wrap + 10)  # the capture is just past a wrap of the 32 bits
    assert decode_strip([255 * b for b in bits], near_wrap) == near_wrap + 10


# --- evidence ----------------------------------------------------------------------------------


def _recording(
    segments: int = 4, per_segment: int = 6
) -> tuple[list[bytes], list[SegmentDigest], list[ExpectedSegment]]:
    """A synthetic recording written by the pure chain: raw files, digests, ledger list."""
    chain = SegmentChain(
        lot_id="lot-1", rendition="720p", codec="VP8", width=1280, height=720, segment_us=1_000
    )
    files: list[bytearray] = []
    expected: list[ExpectedSegment] = []
    for n in range(segments * per_segment):
        packet = SegmentPacket(
            data=bytes([n % 251]) * (10 + n),
            pts=n * 3000,
            capture_us=n * 200,
            keyframe=n % per_segment == 0,
        )
        step = chain.add(packet)
        if step.close is not None:
            expected.append(_expected(step.close))
        if step.open_index is not None:
            files.append(bytearray())
        for chunk in step.chunks:
            files[-1] += chunk
    last = chain.finish()
    assert last is not None
    expected.append(_expected(last))
    raw = [bytes(f) for f in files]
    digests = [SegmentDigest.of(f"seg-{i:08d}.gvs", data) for i, data in enumerate(raw)]
    return raw, digests, expected


def _expected(finished: FinishedSegment) -> ExpectedSegment:
    return ExpectedSegment(finished.index, finished.sha256_hex, finished.prev_sha256_hex)


def test_segment_chain_links_and_verifies() -> None:
    _, digests, expected = _recording()
    assert [e.index for e in expected] == [0, 1, 2, 3]
    assert expected[0].prev_sha256_hex == GENESIS_SHA256
    assert all(
        b.sha256_hex == a.prev_sha256_hex for b, a in zip(expected, expected[1:], strict=False)
    )
    report = verify_digests(digests, expected)
    assert (
        report.segments == 4
        and report.packets == 24
        and report.head_sha256_hex == expected[-1].sha256_hex
    )


def test_segments_carry_their_media_and_capture_times() -> None:
    """Each segment runs from its first packet to where the next one starts (media time in
    1/90000, capture time in server µs); the last one ends just after its last packet."""
    chain = SegmentChain(
        lot_id="lot-1", rendition="720p", codec="VP8", width=1280, height=720, segment_us=1_000
    )
    closed: list[FinishedSegment] = []
    for n in range(12):
        packet = SegmentPacket(b"x", pts=n * 3000, capture_us=n * 200, keyframe=n % 6 == 0)
        step = chain.add(packet)
        if step.close is not None:
            closed.append(step.close)
    last = chain.finish()
    assert last is not None
    first = closed[0]
    assert (first.start_pts, first.end_pts) == (0, 6 * 3000)
    assert (first.started_us, first.ended_us) == (0, 6 * 200)
    assert (last.start_pts, last.end_pts) == (6 * 3000, 11 * 3000 + 1)
    assert (last.started_us, last.ended_us) == (6 * 200, 11 * 200 + 1)


def test_verification_names_a_cut() -> None:
    _, digests, expected = _recording()
    with pytest.raises(SegmentMissing) as caught:
        verify_digests(digests[:1] + digests[2:], expected)
    assert caught.value.index == 1
    with pytest.raises(SegmentMissing) as tail:
        verify_digests(digests[:3], expected)
    assert tail.value.index == 3


def test_verification_names_a_swap() -> None:
    _, digests, expected = _recording()
    swapped = [digests[0], digests[2], digests[1], digests[3]]
    with pytest.raises(SegmentOutOfOrder) as caught:
        verify_digests(swapped, expected)
    assert caught.value.index == 1 and caught.value.found_at == 2


def test_verification_names_an_extra_segment_and_a_broken_ledger() -> None:
    _, digests, expected = _recording()
    with pytest.raises(UnexpectedSegment):
        verify_digests(digests, expected[:3])
    with pytest.raises(ExpectedChainBroken):
        verify_digests(digests, [expected[0], expected[2]])
    with pytest.raises(ExpectedChainBroken):
        verify_digests(digests, [])


def test_a_segment_that_hashes_right_but_names_another_index_is_malformed() -> None:
    _, digests, expected = _recording(segments=1)
    forged = [ExpectedSegment(5, expected[0].sha256_hex, expected[0].prev_sha256_hex)]
    with pytest.raises(SegmentMalformed):
        verify_digests(digests, forged)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_any_flipped_byte_is_an_edit(data: st.DataObject) -> None:
    raw, digests, expected = _recording(segments=3, per_segment=3)
    position = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    edited = bytearray(raw[position])
    offset = data.draw(st.integers(min_value=0, max_value=len(edited) - 1))
    edited[offset] ^= data.draw(st.integers(min_value=1, max_value=255))
    tampered = list(digests)
    tampered[position] = SegmentDigest.of(digests[position].name, bytes(edited))
    with pytest.raises(SegmentAltered) as caught:
        verify_digests(tampered, expected)
    assert caught.value.index == expected[position].index


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_parse_segment_only_raises_malformed(data: bytes) -> None:
    try:
        parse_segment(b"GAVELSG1" + data)
    except SegmentMalformed:
        pass


def test_importing_streaming_pulls_in_no_adapter() -> None:
    """STYLE rule 12: `import streaming` must not import aiohttp, aiortc or av."""
    code = (
        "import sys, streaming\n"
        "print(sorted(m for m in ('aiohttp', 'aiortc', 'av', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == "[]"
