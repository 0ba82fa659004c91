"""The fields a processor reads, checked against its inputs' registered schemas at start-up.

A producer team may remove a field from its product (a compatible change for its own
consumers); a processor reading that field would crash on the first new record. Checking its
declared ``reads`` against the registry's latest schema of each input when it starts turns
that crash loop into one line naming the field, the input and the processor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing.codec import field_defaults
from mesh_stream.processing.spec import Processor

log = logging.getLogger(__name__)

__all__ = [
    "check_reads",
    "read_defaults",
    "schema_field_types",
    "schema_fields",
    "time_type_problem",
]


def schema_fields(schema_text: str) -> frozenset[str]:
    """Top-level field names of an Avro record schema (empty for anything else)."""
    return frozenset(schema_field_types(schema_text))


def schema_field_types(schema_text: str) -> dict[str, Any]:
    """Top-level field name -> Avro type of a record schema (empty for anything else)."""
    try:
        schema: Any = json.loads(schema_text)
    except ValueError:
        return {}
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return {}
    return {
        field["name"]: field.get("type")
        for field in schema.get("fields", [])
        if isinstance(field, dict) and "name" in field
    }


#: Logical types whose long is epoch milliseconds (none: a plain long, taken as such).
_MILLIS = (None, "timestamp-millis", "local-timestamp-millis")


def time_type_problem(avro_type: Any) -> str | None:
    """Why a field of ``avro_type`` cannot hold an event time in epoch milliseconds (a long,
    plain or timestamp-millis, or a union of null and one), or None when it can."""
    if isinstance(avro_type, list):
        others = [item for item in avro_type if item != "null"]
        if len(others) == 1:
            return time_type_problem(others[0])
        return f"the union {json.dumps(avro_type)}"
    base, logical = avro_type, None
    if isinstance(avro_type, dict):
        base, logical = avro_type.get("type"), avro_type.get("logicalType")
    if base == "long" and logical in _MILLIS:
        return None
    if isinstance(base, str) and logical is not None:
        return f"{base} ({logical})"
    return json.dumps(base) if not isinstance(base, str) else base


def check_reads(processor: Processor, input_schemas: Mapping[str, str]) -> None:
    """Every field ``processor`` reads (its ``reads``, which hold ``event_time`` and the
    dedup field) must be in the latest registered schema of its input, and the
    ``event_time`` field must hold epoch milliseconds; an input whose schema is not given is
    not checked."""
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
        dedup = processor.dedup
        if dedup is not None and dedup.field in known and dedup.field not in declared.reads:
            log.warning(
                "processor %s: input %s has the dedup field %r but does not read it, so its "
                "records are not deduplicated (a retried copy counts twice); add %r to that "
                "input's `reads`",
                processor.output,
                declared.product,
                dedup.field,
                dedup.field,
            )
        if declared.event_time is not None:
            problem = time_type_problem(schema_field_types(schema).get(declared.event_time))
            if problem is not None:
                raise ConfigurationError(
                    f"processor {processor.output}: event_time {declared.event_time!r} of "
                    f"{declared.product} is {problem} in its latest registered schema; "
                    f"windows need epoch milliseconds (a long, or a long with logicalType "
                    f"timestamp-millis): name such a field, or leave event_time out to use "
                    f"the arrival time"
                )


def read_defaults(
    processor: Processor, input_schemas: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Input product -> the defaults its latest schema (``input_schemas``) gives the fields
    ``processor`` reads, as a worker and its reference take them for records written before
    such a field was added (:func:`~mesh_stream.processing.codec.field_defaults`)."""
    return {
        declared.product: field_defaults(input_schemas[declared.product], declared.reads)
        for declared in processor.inputs
        if declared.product in input_schemas
    }
