"""The frames of a spool segment: what was written whole is read back; a torn or damaged tail
is never read as an event."""

from __future__ import annotations

import pytest

from agent_history.producer.framing import (
    HEAD_BYTES,
    MAX_BODY_BYTES,
    decode_frames,
    encode_frame,
    recorded_at,
)

FRAMES = [
    encode_frame(b"key-1", b'{"n": 1}', 1),
    encode_frame(b"key-2", b"", 2),
    encode_frame(b"", b"x" * 5000, 3),
]
DATA = b"".join(FRAMES)


def test_frames_read_back_whole_with_their_offsets() -> None:
    decoded = decode_frames(DATA, 100)

    assert [(f.key, f.value, f.recorded_ns) for f in decoded.frames] == [
        (b"key-1", b'{"n": 1}', 1),
        (b"key-2", b"", 2),
        (b"", b"x" * 5000, 3),
    ]
    ends = [100 + sum(map(len, FRAMES[: i + 1])) for i in range(3)]
    assert [f.end for f in decoded.frames] == ends
    assert [f.size for f in decoded.frames] == [len(f) for f in FRAMES]
    assert (decoded.end, decoded.damaged) == (100 + len(DATA), False)


def test_a_torn_tail_is_never_a_frame() -> None:
    for cut in range(1, len(DATA)):
        decoded = decode_frames(DATA[:cut], 0)

        whole = [i for i in range(3) if sum(map(len, FRAMES[: i + 1])) <= cut]
        assert len(decoded.frames) == len(whole), cut
        assert decoded.end == sum(len(FRAMES[i]) for i in whole), cut
        assert not decoded.damaged, f"cut at {cut}: a short read is not damage, more may come"
        assert decoded.end + decoded.wanted > cut


def test_a_flipped_byte_stops_reading_as_damage() -> None:
    damaged = bytearray(DATA)
    damaged[len(FRAMES[0]) + 20] ^= 0xFF

    decoded = decode_frames(bytes(damaged), 0)

    assert [f.key for f in decoded.frames] == [b"key-1"]
    assert (decoded.end, decoded.damaged) == (len(FRAMES[0]), True)


@pytest.mark.parametrize(
    "tail", [bytes(64), (MAX_BODY_BYTES + 1).to_bytes(4, "little") + bytes(60)]
)
def test_zeros_or_an_absurd_length_after_a_crash_are_damage(tail: bytes) -> None:
    decoded = decode_frames(FRAMES[0] + tail, 0)

    assert len(decoded.frames) == 1
    assert decoded.damaged


def test_when_a_frame_was_recorded_is_in_its_head() -> None:
    assert recorded_at(encode_frame(b"k", b"v", 1_700_000_000_123_456_789)[:HEAD_BYTES]) == (
        1_700_000_000_123_456_789
    )
    assert recorded_at(b"short") is None
