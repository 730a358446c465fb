"""Naming, choosing and previewing dead letters (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_history.projector.dlq import DeadLetter, matching, parse_position, to_redrive


def letter(offset: int, reason: str, value: bytes | None = b"{}") -> DeadLetter:
    headers = (("content-type", b"application/json"), ("dlq-reason", reason.encode()))
    return DeadLetter(0, offset, datetime(2025, 6, 1, tzinfo=UTC), b"k", value, headers)


@pytest.mark.parametrize(("text", "position"), [("7", (0, 7)), ("2:15", (2, 15))])
def test_a_position_is_partition_and_offset_or_an_offset_of_partition_0(
    text: str, position: tuple[int, int]
) -> None:
    assert parse_position(text) == position


@pytest.mark.parametrize("text", ["", "x", "1:", "1:2:3", "-1", "0:-4"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"PARTITION:OFFSET|negative"):
        parse_position(text)


def test_letters_are_chosen_by_reason_in_any_case_and_by_position() -> None:
    a, b = letter(1, "unknown type: X"), letter(2, "invalid event: time: bad")
    assert matching([a, b], reason="UNKNOWN") == [a]
    assert matching([a, b], positions=[(0, 2)]) == [b]
    assert matching([a, b], reason="unknown", positions=[(0, 2)]) == []
    assert matching([a, b]) == [a, b]


def test_the_preview_is_one_short_line_and_the_original_headers_leave_out_the_dlq_ones() -> None:
    d = letter(1, "r", b'{"a":\n"' + b"x" * 200 + b'"}\x00')
    assert "\n" not in d.preview()
    assert len(d.preview()) == 60
    assert d.preview().endswith("…")
    assert letter(1, "r", None).preview() == "(no value)"
    assert d.original_headers == [("content-type", b"application/json")]
    assert d.reason == "r"
    assert d.origin == "?[?]@?"


def test_a_redrive_by_reason_leaves_out_letters_that_failed_again_but_not_named_ones() -> None:
    first = letter(1, "unknown type: X")
    again = DeadLetter(
        0, 2, first.timestamp, b"k", b"{}", (*first.headers, ("dlq-redriven-from", b"0:1"))
    )
    assert again.redriven_from == "0:1"
    assert to_redrive([first, again], "unknown", []) == ([first], [again])
    assert to_redrive([first, again], None, [(0, 2)]) == ([again], [])
