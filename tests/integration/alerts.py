"""Reading the product monitor's alerts topic back in integration tests."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from mesh_stream.health import Alert


def read_alerts(bootstrap: str, topic: str) -> list[Alert]:
    """Every alert on ``topic`` (one partition) so far, oldest first."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"alerts-{uuid.uuid4().hex}"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        alerts: list[Alert] = []
        deadline = time.monotonic() + 20
        while len(alerts) < high and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    alerts.append(Alert.model_validate_json(message.value() or b""))
        return alerts
    finally:
        consumer.close()
