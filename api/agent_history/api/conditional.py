"""Conditional GETs: an ETag on lists and details, and 304 Not Modified for a matching
If-None-Match.

A list's ETag comes from the change feed's version of its agent (or user), the request's query
and the caller: while the feed listens, no run of that agent can change without the version
changing, so a matching If-None-Match is answered before any query runs. When the feed cannot
vouch (not listening yet, or its connection was lost), and for one execution, the ETag is a
hash of the body: the query runs, but an unchanged body is not sent again.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

from agent_history.api.changes import ChangeFeed
from agent_history.api.filters import ExecutionFilter


def _tag(*parts: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return f'"{digest.hexdigest()}"'


def list_etag(request: Request, feed: ChangeFeed, where: ExecutionFilter) -> str | None:
    """The ETag of a list request from the feed's version, or None when it cannot vouch."""
    version = feed.version(where.agent_id, where.user_id)
    if version is None:
        return None
    owner = b"" if where.owner_id is None else where.owner_id.bytes
    return _tag(version.encode(), request.url.path.encode(), request.url.query.encode(), owner)


def matches(request: Request, etag: str) -> bool:
    """Whether If-None-Match names ``etag`` (weak comparison, as RFC 9110 asks for GET)."""
    given = request.headers.get("if-none-match")
    if not given:
        return False
    if given.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in given.split(","))


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag})


def tagged(request: Request, response: Response, etag: str | None = None) -> Response:
    """``response`` with ``etag`` (else a hash of its body), or a 304 when the client has it."""
    if etag is None:
        etag = _tag(bytes(response.body))
    if matches(request, etag):
        return not_modified(etag)
    response.headers["ETag"] = etag
    return response
