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


#: What starts the metadata of a crashed worker's re-key group's committed offsets (offsets
#: unchanged), before the crash's time and line: the product monitor, which fetches the group's
#: offsets, shows the line while the processor's output has no record newer than the crash.
CRASH_NOTE = "mesh.crashed "
#: The most characters of a crash line kept in offset metadata (Kafka's
#: ``offset.metadata.max.bytes`` is 4,096 bytes by default).
CRASH_NOTE_LIMIT = 1_000


def crash_note(line: str, at_ms: int) -> str:
    """The offset metadata of a crash at ``at_ms`` (epoch ms) logged as ``line``, cut short
    when long."""
    if len(line) > CRASH_NOTE_LIMIT:
        line = f"{line[: CRASH_NOTE_LIMIT - 3]}..."
    return f"{CRASH_NOTE}{at_ms} {line}"


def crash_of(metadata: str | None) -> tuple[int, str] | None:
    """(when, line) of the crash an offset's ``metadata`` notes; None when it notes none."""
    if not metadata or not metadata.startswith(CRASH_NOTE):
        return None
    stamp, _, line = metadata[len(CRASH_NOTE) :].partition(" ")
    if not stamp.isdigit() or not line:
        return None
    return int(stamp), line


def processor_of_group(group: str) -> str | None:
    """The output product whose processor's re-key stage commits as ``group`` (the inverse of
    ``sources_group(processor_app_id(output))``); None for any other group."""
    head, tail = processor_app_id(""), sources_group("")
    if len(group) <= len(head) + len(tail) or not group.startswith(head):
        return None
    return group[len(head) : -len(tail)] if group.endswith(tail) else None
