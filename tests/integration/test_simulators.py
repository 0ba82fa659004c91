"""The four simulators against the real broker and registry: what they publish is exactly the
seeded story's share of their domain (values, keys and Kafka timestamps), and they stop cleanly
on SIGTERM without losing what they published."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from domains.story import DOMAINS, Story, domain_events
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress

REPO = Path(__file__).resolve().parents[2]
RATE = 300.0
SEED = 1234
DURATION_S = 4.0

Published = dict[str, list[tuple[str, dict[str, Any], int]]]


def source_products() -> list[DataProduct]:
    return [p for p in load_descriptors(REPO / "domains") if p.domain in DOMAINS]


def _high_watermark(consumer: Consumer, partition: TopicPartition) -> int:
    """The partition's end offset; a topic created a moment ago may not have a leader yet."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def end_offsets(bootstrap: str, products: list[DataProduct]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-sim-offsets"})
    try:
        ends = {}
        for product in products:
            metadata = consumer.list_topics(product.topic, timeout=10).topics[product.topic]
            for partition in metadata.partitions:
                ends[(product.topic, partition)] = _high_watermark(
                    consumer, TopicPartition(product.topic, partition)
                )
        return ends
    finally:
        consumer.close()


def read_since(
    bootstrap: str,
    registry: RegistryClient,
    products: list[DataProduct],
    starts: dict[tuple[str, int], int],
) -> Published:
    """Every record written after ``starts``: product -> [(key, value, timestamp)]."""
    ends = end_offsets(bootstrap, products)
    names = {p.topic: p.name for p in products}
    decoder = FramedAvroDecoder(registry.get_schema)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"it-sim-{uuid.uuid4().hex[:6]}"}
    )
    assignment = [
        TopicPartition(topic, partition, starts.get((topic, partition), 0))
        for (topic, partition), end in ends.items()
        if end > starts.get((topic, partition), 0)
    ]
    remaining = sum(end - starts.get(tp, 0) for tp, end in ends.items())
    records: Published = defaultdict(list)
    consumer.assign(assignment)
    try:
        deadline = time.monotonic() + 60
        while remaining > 0 and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=min(remaining, 5000), timeout=1.0):
                assert message.error() is None, message.error()
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                value = decoder.decode(message.value(), where=where)
                records[names[message.topic()]].append(
                    (message.key().decode(), value, message.timestamp()[1])
                )
                remaining -= 1
    finally:
        consumer.close()
    assert remaining == 0
    return records


def simulator_env(kafka: KafkaAddress, registry: RegistryAddress, domain: str) -> dict[str, str]:
    return {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": domain,  # a domain's own credential registers its products
        "MESH_REGISTRY_TOKEN": registry.tokens[domain],
    }


def story_share(domain: str, epoch_ms: int, until_ms: int | None, count: int | None) -> Published:
    expected: Published = defaultdict(list)
    for n, event in enumerate(domain_events(Story(SEED, epoch_ms, RATE), domain)):
        if (until_ms is not None and event.emit_at_ms >= until_ms) or n == count:
            break
        expected[event.product].append((event.key, event.value, event.emit_at_ms))
    return expected


def sort_records(records: Published) -> dict[str, list[tuple[str, str, int]]]:
    return {name: sorted((k, repr(v), t) for k, v, t in rows) for name, rows in records.items()}


def test_simulators_publish_exactly_their_share_of_one_story(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    products = source_products()
    client = RegistryClient(registry.url, principal="admin", token=registry.admin_token)
    # Topics exist before the first offsets are read (the simulators would create them).
    from mesh_stream.registration import ensure_topics

    ensure_topics(kafka.bootstrap_servers, products)
    starts = end_offsets(kafka.bootstrap_servers, products)
    # every simulator is up before the story begins, even on a loaded machine (a late one skips
    # the events it missed, and its share would differ)
    epoch_ms = int(time.time() * 1000) + 12_000
    processes = {
        domain: subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"domains.{domain}.simulator",
                "--rate",
                str(RATE),
                "--seed",
                str(SEED),
                "--epoch-ms",
                str(epoch_ms),
                "--duration",
                str(DURATION_S),
            ],
            cwd=REPO,
            env=simulator_env(kafka, registry, domain),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for domain in DOMAINS
    }
    outputs = {domain: process.communicate(timeout=90)[0] for domain, process in processes.items()}
    for domain, process in processes.items():
        assert process.returncode == 0, outputs[domain]

    published = read_since(kafka.bootstrap_servers, client, products, starts)
    expected: Published = defaultdict(list)
    for domain in DOMAINS:
        share = story_share(domain, epoch_ms, epoch_ms + int(DURATION_S * 1000), None)
        expected.update(share)
        summary = ", ".join(f"{name}={len(rows)}" for name, rows in sorted(share.items()))
        assert f"{domain} simulator: published {summary}" in outputs[domain]
    assert sort_records(published) == sort_records(expected)
    assert sum(len(rows) for rows in published.values()) > RATE * DURATION_S / 2
    for product in products:  # and each one's descriptor is registered, by its domain
        assert client.get_product(product.name)["name"] == product.name
    client.close()


def test_a_simulator_stops_cleanly_on_sigterm_and_loses_nothing(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    products = [p for p in source_products() if p.domain == "customers"]
    client = RegistryClient(registry.url, principal="admin", token=registry.admin_token)
    from mesh_stream.registration import ensure_topics

    ensure_topics(kafka.bootstrap_servers, products)
    starts = end_offsets(kafka.bootstrap_servers, products)
    epoch_ms = int(time.time() * 1000) + 3_000
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "domains.customers.simulator",
            "--rate",
            str(RATE),
            "--seed",
            str(SEED),
            "--epoch-ms",
            str(epoch_ms),
        ],
        cwd=REPO,
        env=simulator_env(kafka, registry, "customers"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Stopped once it has published for a while (no end given). A fixed sleep was once
    # shorter than the start-up of a simulator on a loaded machine: it had published nothing.
    deadline = time.monotonic() + 60
    while end_offsets(kafka.bootstrap_servers, products) == starts:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the simulator published nothing within 60 s"
        time.sleep(0.5)
    time.sleep(2)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "customers simulator: SIGTERM, stopping" in output
    counts = dict(re.findall(r"(customers\.[a-z-]+)=(\d+)", output))
    total = sum(int(n) for n in counts.values())
    assert total > 0, output

    published = read_since(kafka.bootstrap_servers, client, products, starts)
    expected = story_share("customers", epoch_ms, None, total)
    assert sort_records(published) == sort_records(expected)  # a prefix of the story, complete
    client.close()
