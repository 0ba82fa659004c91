"""How `mesh tail` prints a record: one line each, whatever the key holds."""

from __future__ import annotations

import pytest

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
