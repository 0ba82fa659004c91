"""Schemas the export tests share."""

from __future__ import annotations

from typing import Any

#: ``Node`` inside itself, and the top record ``Tree`` inside itself.
RECURSIVE: dict[str, Any] = {
    "type": "record",
    "name": "Tree",
    "namespace": "x",
    "fields": [
        {
            "name": "root",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [
                    {"name": "value", "type": "long"},
                    {"name": "next", "type": ["null", "Node"], "default": None},
                ],
            },
        },
        {"name": "parent", "type": ["null", "Tree"], "default": None},
    ],
}

#: ``Address`` defined inline once, then used by name, in a union and as array items.
ADDRESS_REUSED: dict[str, Any] = {
    "type": "record",
    "name": "Src",
    "namespace": "x",
    "fields": [
        {
            "name": "home",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [{"name": "city", "type": "string", "doc": "City."}],
            },
        },
        {"name": "work", "type": "Address"},
        {"name": "maybe", "type": ["null", "x.Address"], "default": None},
        {"name": "past", "type": {"type": "array", "items": "Address"}},
    ],
}


def doubling(levels: int) -> dict[str, Any]:
    """Records R1..Rn, each holding the one before twice (by name the second time): a valid
    schema of a few KB whose field paths number 2**levels."""
    leaf = {"name": "v", "type": "string", "pii": True}
    inner: Any = {"type": "record", "name": "R0", "fields": [leaf]}
    for level in range(1, levels + 1):
        inner = {
            "type": "record",
            "name": f"R{level}",
            "fields": [{"name": "a", "type": inner}, {"name": "b", "type": f"R{level - 1}"}],
        }
    return {"type": "record", "name": "Top", "fields": [{"name": "t", "type": inner}]}
