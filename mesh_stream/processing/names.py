"""The Kafka names a processor uses, and the shape of its crash line, in one place and free
of faust, so that tools watching processors (the live view, `mesh up`'s events, `mesh verify`)
name the same groups the workers use and find the line they log."""

from __future__ import annotations

#: Name of a processor's internal topic after its app id (``<app id>-by-key``): the re-key
#: stage writes each key's events there, the aggregate agent reads them.
INTERNAL_TOPIC = "by-key"


def processor_app_id(output_name: str) -> str:
    """Faust app id of the processor building ``output_name``: also its consumer group and
    the prefix of its internal topics."""
    return f"mesh-{output_name}"


def sources_group(app_id: str) -> str:
    """Consumer group whose committed offsets say how far the re-key stage read the inputs.

    ``-rekey`` since the one engine: its state tables and internal topic are new, so it must
    not resume from the offsets of the hand-written processors' group (``-sources``), whose
    state it does not have; it reads the inputs again from the start instead.
    """
    return f"{app_id}-rekey"


#: The line a worker logs before it stops on a record (``engine.crash_line``): ``processor
#: <output> crashed on <topic[partition]@offset>: <what>``.
CRASH_LINE_PATTERN = r"\bprocessor \S+ crashed on \S+: .*"
