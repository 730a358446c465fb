"""Opaque keyset cursors: where a page ended, bound to the query it came from, HMAC-signed.

A cursor is base64url(version, execution_start in microseconds since the epoch, execution id,
query fingerprint, MAC). The fingerprint is a hash of the filters and the order, so a cursor
only continues the query that made it; the MAC (HMAC-SHA256, truncated to 128 bits) makes any
edit detectable. Every way a cursor can be wrong is an ``InvalidCursor``, which the HTTP layer
answers with a 400 problem (api.problems).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from agent_history.api.settings import ApiSettings

_VERSION = 1
_BODY = struct.Struct(">Bq16s8s")  # version, start (µs since epoch), id, fingerprint
_MAC_BYTES = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class InvalidCursor(Exception):
    """A cursor that cannot continue the query it was given to; the message says why, in
    words for the client."""


@dataclass(frozen=True)
class Position:
    """The last row of a page, in the list's order: (execution_start, id)."""

    execution_start: datetime
    id: UUID


def cursor_key(settings: ApiSettings) -> bytes:
    """The cursor signing key: cursor_secret, else a key derived from jwt_secret."""
    if settings.cursor_secret is not None:
        return settings.cursor_secret.get_secret_value().encode()
    secret = settings.jwt_secret.get_secret_value().encode()
    return hmac.new(secret, b"agent-history pagination cursors", hashlib.sha256).digest()


def fingerprint(query: object) -> bytes:
    """Eight bytes that tell one query's filters and order from another's."""
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()[:8]


class CursorCodec:
    """Encodes positions as signed cursors and checks the cursors it is given."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, position: Position, query: bytes) -> str:
        micros = (position.execution_start - _EPOCH) // _MICROSECOND
        body = _BODY.pack(_VERSION, micros, position.id.bytes, query)
        token = body + self._mac(body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, cursor: str, query: bytes) -> Position:
        """The position ``cursor`` continues from; InvalidCursor unless it is genuine and was
        made by the same query (``query`` being that query's fingerprint)."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor("the cursor is not one this API issued") from None
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if len(raw) != _BODY.size + _MAC_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidCursor("the cursor is not one this API issued")
        version, micros, execution_id, made_by = _BODY.unpack(body)
        if version != _VERSION:
            raise InvalidCursor("the cursor is from an older version of the API")
        if not hmac.compare_digest(made_by, query):
            raise InvalidCursor(
                "the cursor belongs to a different query: keep the filters, order and path "
                "of the request that returned it"
            )
        return Position(_EPOCH + micros * _MICROSECOND, UUID(bytes=execution_id))

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
