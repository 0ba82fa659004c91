"""The revenue aggregation written with Quix Streams 3: the processing benchmark's peer.

The benchmark runs this file as a script with the Python of its own virtualenv (quixstreams
and fastavro, see ``mesh_stream.bench.processing_bench.quix_python``); it imports nothing from
mesh_stream, as a team using Quix would not. ``QUIX_PEER_CONFIG`` (JSON, in the environment so
the registry credential is not on a command line) says where the broker and the registry are,
which topics, consumer group and state folder to use, and the window.

It computes what ``analytics.revenue-by-region`` computes, the idiomatic Quix way:

* decode the Confluent-framed Avro orders with fastavro, the writer schema fetched by id from
  the registry (Confluent-compatible); logical types are left undecoded, so ``total_amount``
  arrives as the unscaled big-endian integer, which *is* the amount in cents (scale 2);
* drop an order that reached Kafka (its record timestamp) after its window's end plus grace,
  mesh-stream's lateness rule; Quix's own window grace, kept in stream time per key, is set
  long enough (``stream_grace_ms``) never to drop anything the rule accepts, because with a
  backlog Quix reads partitions in large chunks and its stream time would run ahead;
* event time = ``placed_at``; ``group_by`` region (a repartition topic, as mesh-stream's
  internal topic); count each ``event_id`` once per region (a stateful filter in RocksDB);
* a tumbling window with ``count`` and ``sum`` of cents, emitting every update
  (``.current()``) as JSON keyed ``<region>@<window start>``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.request
from typing import Any

import fastavro


def strip_logical_types(schema: Any) -> Any:
    """The schema without logicalType annotations (decimals stay bytes, timestamps ints)."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(item) for item in schema]
    return schema


def decode_order(value: bytes, schema: Any) -> dict[str, Any]:
    """The fields the aggregation reads from one Confluent-framed order; ``schema`` is the
    writer schema parsed by fastavro without logical types."""
    if value[0] != 0:
        raise ValueError(f"not Confluent framing (magic byte {value[0]})")
    order: Any = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
    return {
        "event_id": order["event_id"],
        "region": order["region"],
        "cents": int.from_bytes(order["total_amount"], "big", signed=True),
        "placed_at": order["placed_at"],
    }


def main() -> None:
    config = json.loads(os.environ["QUIX_PEER_CONFIG"])

    from quixstreams import Application  # type: ignore[import-not-found,unused-ignore]
    from quixstreams.dataframe.windows.aggregations import (  # type: ignore[import-not-found,unused-ignore]
        Count,
        Sum,
    )
    from quixstreams.models.serializers import (  # type: ignore[import-not-found,unused-ignore]
        Deserializer,
    )

    window_ms: int = config["window_ms"]
    grace_ms: int = config["grace_ms"]
    headers = {"Accept": "application/vnd.schemaregistry.v1+json"}
    if config.get("registry_principal") and config.get("registry_token"):
        pair = f"{config['registry_principal']}:{config['registry_token']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    class ConfluentAvroOrders(Deserializer):  # type: ignore[misc]
        """Confluent wire format -> the four fields the aggregation reads."""

        def __init__(self) -> None:
            super().__init__()
            self.schemas: dict[int, Any] = {}

        def schema(self, schema_id: int) -> Any:
            request = urllib.request.Request(
                f"{config['registry_url'].rstrip('/')}/schemas/ids/{schema_id}", headers=headers
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = json.load(answer)["schema"]
            parsed = fastavro.parse_schema(strip_logical_types(json.loads(text)))
            self.schemas[schema_id] = parsed
            return parsed

        def __call__(self, value: bytes, ctx: Any) -> dict[str, Any]:
            del ctx  # Quix passes the topic and headers; the schema id is in the bytes
            schema_id = int.from_bytes(value[1:5], "big")
            return decode_order(value, self.schemas.get(schema_id) or self.schema(schema_id))

    def on_time(order: dict[str, Any], _key: Any, arrival_ms: int, _headers: Any) -> bool:
        placed_at: int = order["placed_at"]
        return arrival_ms < placed_at - placed_at % window_ms + window_ms + grace_ms

    def first_delivery(order: dict[str, Any], state: Any) -> bool:
        if state.exists(order["event_id"]):
            return False
        state.set(order["event_id"], 1)
        return True

    def window_record(window: dict[str, Any], key: Any, _ts: int, _headers: Any) -> dict[str, Any]:
        return {
            "window_id": f"{key}@{window['start']}",
            "order_count": window["count"],
            "gross_cents": window["cents"],
        }

    app = Application(
        broker_address=config["bootstrap_servers"],
        consumer_group=config["consumer_group"],
        auto_offset_reset="earliest",
        state_dir=config["state_dir"],
        loglevel="WARNING",
    )
    source = app.topic(
        config["input_topic"], key_deserializer="bytes", value_deserializer=ConfluentAvroOrders()
    )
    output = app.topic(config["output_topic"], key_serializer="str", value_serializer="json")
    orders = app.dataframe(source)
    orders = orders.filter(on_time, metadata=True)
    orders = orders.set_timestamp(lambda order, _key, _ts, _headers: order["placed_at"])
    orders = orders.group_by(lambda order: order["region"], name="region")
    orders = orders.filter(first_delivery, stateful=True)
    windows = (
        orders.tumbling_window(window_ms, grace_ms=config["stream_grace_ms"])
        .agg(count=Count(), cents=Sum("cents"))
        .current()
    )
    windows = windows.apply(window_record, metadata=True)
    windows.to_topic(output, key=lambda record: record["window_id"])
    app.run()


if __name__ == "__main__":
    main()
