"""Input transport of a processor worker: faust streams against the re-key stage's consumer.

Issue 15 asked whether faust's own ``confluent://`` transport (librdkafka) could replace the
re-key stage's side consumer (a confluent-kafka ``Consumer`` read in batches, see
``mesh_stream/processing/rekey.py``). This measures only what differs: reading records of
one topic into Python, each record touched once (its value's length summed), in a fresh
process per case, on the same topic:

* ``batch``: ``Consumer.consume(2000, 0.02)`` in a loop, as the re-key stage does;
* ``faust-aiokafka``: an agent iterating a faust stream, faust's default ``kafka://`` driver;
* ``faust-confluent``: the same agent with faust's ``confluent://`` driver.

Each case reports records/s from its first record to its last and the process CPU per record
over that span (user + system, every thread). Usage, against a running broker::

    python benchmarks/faust_transport.py --bootstrap 127.0.0.1:9092 --records 100000 --runs 3

Runs alternate between the cases; the table gives each figure's median and min-max.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

CASES = ("batch", "faust-aiokafka", "faust-confluent")
VALUE = b"x" * 200


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def fill(bootstrap: str, topic: str, records: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n in range(records):
        while True:
            try:
                producer.produce(topic, key=str(n).encode(), value=VALUE)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()


def run_batch(bootstrap: str, topic: str, records: int) -> dict[str, float]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"transport-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = total = 0
    first_at = first_cpu = 0.0
    while seen < records:
        for message in consumer.consume(2000, 0.02):
            if message.error() is not None:
                continue
            if seen == 0:
                first_at, first_cpu = time.monotonic(), cpu_seconds()
            total += len(message.value() or b"")
            seen += 1
    result = {"seconds": time.monotonic() - first_at, "cpu": cpu_seconds() - first_cpu}
    consumer.close()
    return result


def run_faust(bootstrap: str, topic: str, records: int, scheme: str) -> None:
    import faust

    app = faust.App(
        f"transport-{uuid.uuid4().hex[:8]}",
        broker=f"{scheme}://{bootstrap}",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="faust-transport-"),
    )
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    marks: dict[str, float] = {}

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        seen = total = 0
        async for value in stream:
            if seen == 0:
                marks["at"], marks["cpu"] = time.monotonic(), cpu_seconds()
            total += len(value or b"")
            seen += 1
            if seen == records:
                result = {
                    "seconds": time.monotonic() - marks["at"],
                    "cpu": cpu_seconds() - marks["cpu"],
                }
                print("RESULT " + json.dumps(result), flush=True)
                os._exit(0)  # a benchmark subprocess: the figure is printed, nothing to keep

    sys.argv = [
        sys.argv[0],
        "worker",
        "-l",
        os.environ.get("TRANSPORT_LOG", "warn"),
        "--without-web",
    ]
    app.main()


def measure(
    case: str, bootstrap: str, topic: str, records: int, timeout: float
) -> dict[str, float] | None:
    """One case in a fresh process; its result, or None if it did not read every record
    within ``timeout`` seconds."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                case,
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--records",
                str(records),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    # faust sends a worker's stdout to its log, so the line may come with a log prefix
    found = re.search(r"RESULT (\{.*?\})", done.stdout + done.stderr)
    if found is not None:
        return dict(json.loads(found.group(1)))
    raise RuntimeError(f"{case} gave no result:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--case-timeout", type=float, default=120.0, help="seconds a case may take to read all"
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.case is not None:
        if options.case == "batch":
            print(
                "RESULT " + json.dumps(run_batch(options.bootstrap, options.topic, options.records))
            )
        else:
            run_faust(
                options.bootstrap,
                options.topic,
                options.records,
                options.case.split("-")[1].replace("aiokafka", "kafka"),
            )
        return
    topic = f"transport-bench-{uuid.uuid4().hex[:8]}"
    fill(options.bootstrap, topic, options.records)
    results: dict[str, list[dict[str, float] | None]] = {case: [] for case in CASES}
    for run in range(options.runs):
        for case in CASES:
            result = measure(case, options.bootstrap, topic, options.records, options.case_timeout)
            results[case].append(result)
            print(f"run {run + 1} {case}: {describe(result, options.records)}", file=sys.stderr)
    print(
        f"{options.records:,} records of {len(VALUE)} bytes, 3 partitions, {options.runs} runs each"
    )
    print("| case | records/s | CPU µs per record |")
    print("| --- | ---: | ---: |")
    for case, runs in results.items():
        done = [r for r in runs if r is not None]
        if not done:
            print(f"| {case} | no run read every record within {options.case_timeout:.0f} s | |")
            continue
        rates = [options.records / r["seconds"] for r in done]
        cpus = [r["cpu"] / options.records * 1e6 for r in done]
        stalled = f" ({len(runs) - len(done)} runs stalled)" if len(done) < len(runs) else ""
        print(
            f"| {case}{stalled} | {statistics.median(rates):,.0f} "
            f"({min(rates):,.0f}-{max(rates):,.0f}) | {statistics.median(cpus):.1f} "
            f"({min(cpus):.1f}-{max(cpus):.1f}) |"
        )


def describe(result: dict[str, float] | None, records: int) -> str:
    if result is None:
        return "did not read every record in time"
    return (
        f"{records / result['seconds']:,.0f} records/s, "
        f"{result['cpu'] / records * 1e6:.1f} us CPU/record"
    )


if __name__ == "__main__":
    main()
