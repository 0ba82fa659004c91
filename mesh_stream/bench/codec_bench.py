"""The codec alone, no Kafka: CPU µs per record to encode and decode, ours against fastavro.

For each schema (the benchmark record and the sample mesh's product schemas, nested ones
included) it builds deterministic records that vary with their index, then times four loops
over the same records, interleaved and repeated: our :class:`RecordEncoder` against the
hand-written fastavro loop (5-byte header + ``schemaless_writer`` into a fresh ``BytesIO``),
our :class:`RecordDecoder` against ``schemaless_reader`` on a ``BytesIO`` past the header.
Each figure is the median of the runs with their min and max; the ratio is fastavro's
median over ours (above 1: ours is faster). Before timing, both sides must agree on every
record (same bytes, same decoded values), so a fast wrong codec cannot report a ratio.

``python -m mesh_stream.bench.codec_bench SCHEMA.avsc ...`` runs it alone.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import statistics
import struct
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import fastavro

from mesh_stream.schema.codec import RecordDecoder, RecordEncoder, parse_schema, schema_name

SCHEMA_ID = 1
#: Records per timed loop and interleaved runs per loop (defaults of `mesh bench`).
RECORDS = 2_000
REPEATS = 11


class _OneSchema:
    """A schema source holding one schema (the codec bench needs no registry)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def get_schema(self, schema_id: int) -> str:  # noqa: ARG002 - one schema for every id
        return self.text


def sample_value(schema: Any, named: Mapping[str, Any], index: int, depth: int = 0) -> Any:
    """A value of ``schema`` (fastavro-parsed) that varies with ``index``, like real data:
    ids are uuids, amounts have cents, arrays hold 1-4 items, optional fields are set two
    times out of three."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        branches = [branch for branch in schema if branch != "null"]
        if "null" in schema and (index % 3 == 2 or not branches or depth > 4):
            return None
        return sample_value(branches[index % len(branches)], named, index, depth + 1)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        kind = schema.get("type")
        if logical == "decimal":
            scale = int(schema.get("scale", 0))
            unscaled = 300 + (index * 7919) % 1_200_000
            return decimal.Decimal(unscaled).scaleb(-scale)
        if logical == "uuid":
            return str(uuid.UUID(int=(index * 2654435761 + 1) % 2**128))
        if logical in ("timestamp-millis", "local-timestamp-millis"):
            return 1_767_225_600_000 + index * 37
        if logical in ("timestamp-micros", "local-timestamp-micros"):
            return (1_767_225_600_000 + index * 37) * 1000
        if logical == "date":
            return dt.date(2026, 1, 1) + dt.timedelta(days=index % 365)
        if kind == "record":
            return {
                field["name"]: sample_value(field["type"], named, index + position, depth + 1)
                for position, field in enumerate(schema["fields"])
            }
        if kind == "array":
            return [
                sample_value(schema["items"], named, index * 5 + item, depth + 1)
                for item in range(1 + index % 4 if depth < 4 else 0)
            ]
        if kind == "map":
            return {
                f"key-{item}": sample_value(schema["values"], named, index + item, depth + 1)
                for item in range(index % 3 if depth < 4 else 0)
            }
        if kind == "enum":
            return schema["symbols"][index % len(schema["symbols"])]
        if kind == "fixed":
            return bytes((index + offset) % 256 for offset in range(schema["size"]))
        return sample_value(kind, named, index, depth)
    primitives: dict[str, Any] = {
        "null": None,
        "boolean": index % 2 == 0,
        "int": index % 50_000 - 100,
        "long": 1_000_000_007 * index % 2**40,
        "float": (index % 1000) / 8,
        "double": index / 3,
        "string": f"text-{index % 9973:05d}",
        "bytes": index.to_bytes(4, "big"),
    }
    return primitives[schema]


def sample_records(document: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    parsed = parse_schema(document)
    named = parsed.get("__named_schemas", {})
    return [sample_value(parsed, named, index) for index in range(count)]


def _timed(loop: Callable[[], object]) -> float:
    """CPU seconds of this process spent in ``loop`` (time spent waiting for a core on a
    busy machine does not count; a single thread, so it is the loop's own work)."""
    started = time.process_time()
    loop()
    return time.process_time() - started


def _spread(seconds: Sequence[float], count: int) -> dict[str, float]:
    """Median, min and max of the runs, in µs per record."""
    per_record = [second / count * 1e6 for second in seconds]
    return {
        "median": round(statistics.median(per_record), 3),
        "min": round(min(per_record), 3),
        "max": round(max(per_record), 3),
    }


def measure_schema(
    document: Mapping[str, Any],
    *,
    records: int = RECORDS,
    repeats: int = REPEATS,
    rows: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Encode and decode µs per record, ours and fastavro's, for one schema (see module doc);
    ``rows`` are the records to use (default: :func:`sample_records`)."""
    text = json.dumps(document)
    rows = list(rows) if rows is not None else sample_records(document, records)
    records = len(rows)
    encoder = RecordEncoder(text, SCHEMA_ID)
    decoder = RecordDecoder(_OneSchema(text))
    parsed = fastavro.parse_schema(json.loads(text))
    name = schema_name(parse_schema(text))
    header = struct.pack(">bI", 0, SCHEMA_ID)
    writer, reader = fastavro.schemaless_writer, fastavro.schemaless_reader

    def fastavro_encode(record: Any) -> bytes:
        buffer = io.BytesIO()
        buffer.write(header)
        writer(buffer, parsed, record)
        return buffer.getvalue()

    def fastavro_decode(data: bytes) -> Any:
        buffer = io.BytesIO(data)
        buffer.seek(5)
        return reader(buffer, parsed, None)

    framed = [fastavro_encode(record) for record in rows]
    ours = [encoder.encode(record) for record in rows]
    if ours != framed:
        raise AssertionError(f"{name}: our encoder's bytes differ from fastavro's")
    if [decoder.decode(data) for data in framed] != [fastavro_decode(d) for d in framed]:
        raise AssertionError(f"{name}: our decoder's values differ from fastavro's")

    encode, decode = encoder.encode, decoder.decode
    loops: dict[str, Callable[[], object]] = {
        "encode_mesh": lambda: [encode(record) for record in rows],
        "encode_fastavro": lambda: [fastavro_encode(record) for record in rows],
        "decode_mesh": lambda: [decode(data) for data in framed],
        "decode_fastavro": lambda: [fastavro_decode(data) for data in framed],
    }
    runs: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for loop_name, loop in loops.items():
            runs[loop_name].append(_timed(loop))
    result: dict[str, Any] = {
        "schema": name,
        "record_bytes": round(sum(map(len, framed)) / len(framed), 1),
        "records": records,
        "repeats": repeats,
    }
    for way in ("encode", "decode"):
        mesh, other = (
            _spread(runs[f"{way}_mesh"], records),
            _spread(runs[f"{way}_fastavro"], records),
        )
        result[way] = {
            "mesh_us": mesh,
            "fastavro_us": other,
            "ratio": round(other["median"] / mesh["median"], 2),
        }
    return result


CodecCase = tuple[str, Mapping[str, Any], Callable[[int], dict[str, Any]] | None]
"""(label, schema document, record maker by index or None for :func:`sample_value`)."""


def run_codec_bench(
    schemas: Sequence[CodecCase],
    *,
    records: int = RECORDS,
    repeats: int = REPEATS,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`measure_schema` for each case, ``records`` records each."""
    results = []
    for label, document, maker in schemas:
        if progress is not None:
            progress(f"codec: {label} ...")
        rows = None if maker is None else [maker(index) for index in range(records)]
        measured = measure_schema(document, records=records, repeats=repeats, rows=rows)
        results.append({"case": label, **measured})
    return results


def sample_mesh_schemas(root: Path) -> list[CodecCase]:
    """The sample mesh's contracts (``schemas/<domain>/<product>.avsc`` under ``root``),
    labelled by product name."""
    return [
        (f"{path.parent.name}.{path.stem}", json.loads(path.read_text(encoding="utf-8")), None)
        for path in sorted(root.glob("schemas/*/*.avsc"))
    ]


def render_codec(results: Sequence[Mapping[str, Any]]) -> str:
    """The codec results as a text table (CPU µs per record: median and min-max)."""

    def cell(spread: Mapping[str, float]) -> str:
        return f"{spread['median']:.2f} ({spread['min']:.2f}-{spread['max']:.2f})"

    lines = [
        f"{'schema':<34} {'bytes':>5}  {'encode us: mesh':>22} {'fastavro':>22} {'x':>5}  "
        f"{'decode us: mesh':>22} {'fastavro':>22} {'x':>5}"
    ]
    for row in results:
        encode, decode = row["encode"], row["decode"]
        lines.append(
            f"{row['case']:<34} {row['record_bytes']:>5.0f}  {cell(encode['mesh_us']):>22} "
            f"{cell(encode['fastavro_us']):>22} {encode['ratio']:>5.2f}  "
            f"{cell(decode['mesh_us']):>22} {cell(decode['fastavro_us']):>22} "
            f"{decode['ratio']:>5.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """``python -m mesh_stream.bench.codec_bench SCHEMA.avsc ...``: print the table."""
    schemas: list[CodecCase] = [
        (Path(name).stem, json.loads(Path(name).read_text()), None) for name in argv[1:]
    ]
    print(render_codec(run_codec_bench(schemas)))


if __name__ == "__main__":
    main(sys.argv)
