"""How recorded events lie in a spool segment: a magic header, then one frame per event.

A frame is ``length | crc32 | body`` with body ``recorded at (ns) | key length | key | value``;
the length and the checksum cover the body. A crash in the middle of a write leaves a frame
that is short or fails its checksum: reading stops there, so a torn tail is cut, never shipped.
Pure functions over bytes; the files are segments.py's.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

MAGIC = b"AHSPOOL1"  # a format of another version is left alone, not misread
_PREFIX = struct.Struct("<II")  # body length, crc32 of the body
_BODY = struct.Struct("<qH")  # recorded at (ns since the epoch), key length
PREFIX_BYTES = _PREFIX.size
HEAD_BYTES = _PREFIX.size + _BODY.size  # enough to learn when a frame was recorded
# Far above any event the projector accepts: a bigger length is damage, not an event.
MAX_BODY_BYTES = 64 << 20


class Frame(NamedTuple):
    key: bytes
    value: bytes
    recorded_ns: int
    end: int  # the offset just after the frame in its segment
    size: int  # the frame's bytes, prefix included


class Decoded(NamedTuple):
    frames: list[Frame]
    end: int  # the offset after the last whole frame
    damaged: bool  # stopped at a frame that is not one (as opposed to data that ends early)
    wanted: int  # bytes needed from ``end`` to read the next frame whole (0 when damaged)


def encode_frame(key: bytes, value: bytes, recorded_ns: int) -> bytes:
    body = b"".join((_BODY.pack(recorded_ns, len(key)), key, value))
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


def decode_frames(data: bytes, start: int) -> Decoded:
    """The whole frames at the front of ``data``, which was read from offset ``start``."""
    frames: list[Frame] = []
    at, size = 0, len(data)
    unpack_prefix, unpack_body, crc32 = _PREFIX.unpack_from, _BODY.unpack_from, zlib.crc32
    view = memoryview(data)
    while True:
        if size - at < PREFIX_BYTES:
            return Decoded(frames, start + at, False, PREFIX_BYTES)
        length, crc = unpack_prefix(data, at)
        if length < _BODY.size or length > MAX_BODY_BYTES:
            return Decoded(frames, start + at, True, 0)
        body_at, end = at + PREFIX_BYTES, at + PREFIX_BYTES + length
        if end > size:
            return Decoded(frames, start + at, False, PREFIX_BYTES + length)
        if crc32(view[body_at:end]) != crc:
            return Decoded(frames, start + at, True, 0)
        recorded_ns, key_length = unpack_body(data, body_at)
        key_at = body_at + _BODY.size
        if key_at + key_length > end:
            return Decoded(frames, start + at, True, 0)
        value_at = key_at + key_length
        frames.append(
            Frame(data[key_at:value_at], data[value_at:end], recorded_ns, start + end, end - at)
        )
        at = end


def recorded_at(head: bytes) -> int | None:
    """When the frame whose first HEAD_BYTES are ``head`` was recorded (ns since the epoch)."""
    if len(head) < HEAD_BYTES:
        return None
    return int(_BODY.unpack_from(head, PREFIX_BYTES)[0])
