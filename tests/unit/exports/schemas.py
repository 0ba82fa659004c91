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
