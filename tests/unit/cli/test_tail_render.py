"""How `mesh tail` prints a record: one line each, whatever the key holds."""

from __future__ import annotations

import pytest

from mesh_stream.cli import tail
from mesh_stream.cli.tail import render
from mesh_stream.consumer import ConsumedRecord


def record(key: str | bytes | None) -> ConsumedRecord:
    return ConsumedRecord("orders.x", "orders.x.v1", 2, 41, key, {"a": 1}, 0, {}, 4)


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("o-1", "o-1"),
        ("k schema=9 {}", '"k schema=9 {}"'),
        ('"a\\nb"', '"\\"a\\\\nb\\""'),
        ("", '""'),
        ("None", '"None"'),  # the text, not a record without a key (h30)
        ("a\norders.x.v1[9]@999 key=FAKE", '"a\\norders.x.v1[9]@999 key=FAKE"'),
        ("\x1b[2Jcleared", '"\\u001b[2Jcleared"'),
        (b"\x00\xff", "b'\\x00\\xff'"),
        # no UTF-8 text: shown as its bytes, not as look-alike characters (a campaign)
        (b"\xff\xfe", "b'\\xff\\xfe'"),
        ("b'\\xff'", "\"b'\\\\xff'\""),  # text that looks like bytes is quoted
        (None, "None"),
    ],
    ids=[
        "plain",
        "blank",
        "quoted",
        "empty",
        "text-none",
        "newline",
        "escape",
        "bytes",
        "not-utf8",
        "bytes-lookalike",
        "none",
    ],
)
def test_a_key_that_is_not_printable_text_is_shown_escaped(key: str | None, shown: str) -> None:
    """A key holding a newline printed a second, forged record line (a campaign)."""
    line = render(record(key), as_json=False)
    assert line == f'orders.x.v1[2]@41 key={shown} schema=4 {{"a": 1}}'
    assert "\n" not in line


def test_an_ended_timeout_waits_for_records_kafka_says_are_unread_and_then_names_them() -> None:
    """--timeout ends tail at once when nothing is left unread; records a partition is known
    to hold keep it going up to UNREAD_WAIT_S longer (Kafka asked at most every
    UNREAD_CHECK_S, within what is left of that wait), after which it stops with an error
    naming them."""
    from mesh_stream.errors import ConsumerError

    budgets: list[float] = []

    def nothing(budget: float) -> list[str]:
        budgets.append(budget)
        return []

    assert tail._EndOfTimeout(nothing, "orders.x").reached(0.0) is True
    assert budgets == [5.0]
    left = ["orders.x[2]@3..7"]

    def some(budget: float) -> list[str]:
        budgets.append(budget)
        return left

    check = tail._EndOfTimeout(some, "orders.x")
    assert check.reached(tail.UNREAD_WAIT_S - 0.8) is False
    assert check.reached(tail.UNREAD_WAIT_S - 0.7) is False  # not asked again so soon
    assert budgets[1:] == [pytest.approx(0.8)]
    with pytest.raises(ConsumerError) as stopped:
        check.reached(tail.UNREAD_WAIT_S)  # asked at the end whatever the last ask
    assert str(stopped.value).startswith(
        "orders.x: stopped 10 s after --timeout ended with records not read from orders.x[2]@3..7"
    )
    assert budgets[2:] == [0.5]


def test_a_tombstone_is_shown_as_a_deletion() -> None:
    """`mesh tail` passed over records with no value without a word (a campaign, h50)."""
    deleted = ConsumedRecord("orders.x", "orders.x.v1", 0, 3, "s-1@100", None, 0, {}, None)
    assert render(deleted, as_json=False) == (
        "orders.x.v1[0]@3 key=s-1@100 deleted (a tombstone: a key with no value)"
    )
    assert render(deleted, as_json=True) == "null"
