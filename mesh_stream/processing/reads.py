"""The fields a processor reads, checked against its inputs' registered schemas at start-up.

A producer team may remove a field from its product (a compatible change for its own
consumers); a processor reading that field would crash on the first new record. Checking its
declared ``reads`` against the registry's latest schema of each input when it starts turns
that crash loop into one line naming the field, the input and the processor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing.spec import Processor

__all__ = ["check_reads", "schema_fields"]


def schema_fields(schema_text: str) -> frozenset[str]:
    """Top-level field names of an Avro record schema (empty for anything else)."""
    try:
        schema: Any = json.loads(schema_text)
    except ValueError:
        return frozenset()
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return frozenset()
    return frozenset(field["name"] for field in schema.get("fields", []) if isinstance(field, dict))


def check_reads(processor: Processor, input_schemas: Mapping[str, str]) -> None:
    """Every field ``processor`` reads (its ``reads``, which hold ``event_time`` and the
    dedup field) must be in the latest registered schema of its input; an input whose schema
    is not given is not checked."""
    for declared in processor.inputs:
        schema = input_schemas.get(declared.product)
        if schema is None:
            continue
        known = schema_fields(schema)
        missing = [name for name in declared.reads if name not in known]
        if missing:
            raise ConfigurationError(
                f"processor {processor.output} reads field {missing[0]!r} of "
                f"{declared.product}, which its latest registered schema does not have "
                f"(fields: {', '.join(sorted(known))}); remove it from `reads` of that input "
                f"(and from key/apply), or restore the field in {declared.product}"
            )
