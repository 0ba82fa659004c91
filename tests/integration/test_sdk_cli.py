"""`mesh publish` and `mesh tail` against the real broker and registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.descriptor import DataProduct
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import json_default
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    FIXTURES,
    PROJECT_SCHEMA_V1,
    decoded,
    end_offsets,
    make_order,
    new_product,
    read_raw,
)

MESH = [sys.executable, "-m", "mesh_stream.cli.main"]


@pytest.fixture
def env(kafka: KafkaAddress, registry: RegistryAddress) -> dict[str, str]:
    return {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "orders",
        "MESH_REGISTRY_TOKEN": registry.tokens["orders"],
    }


def repo_with(product: DataProduct, root: Path) -> Path:
    """A repository root holding the product's descriptor and its schema file."""
    short = product.name.split(".", 1)[1]
    folder = root / "domains" / "orders" / "products"
    folder.mkdir(parents=True)
    (folder / f"{short}.yaml").write_text(yaml.safe_dump(product.to_document()))
    schema = root / product.schema_file
    schema.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "order_v1.avsc", schema)
    return root


def as_json_line(record: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(record, default=json_default))
    return loaded


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_publish_reports_bad_lines_and_publishes_the_good_ones_then_tail_shows_them(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    product = new_product("cli", schema=PROJECT_SCHEMA_V1)
    root = repo_with(product, tmp_path / "repo")
    good = [as_json_line(make_order(i)) for i in range(3)]
    lines = [
        json.dumps(good[0]),
        "",
        '{"order_id": ',
        json.dumps(good[1]),
        json.dumps({**good[1], "quantity": "x"}),
        "[1, 2]",
        json.dumps(good[2]),
    ]
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(lines) + "\n")

    result = run(env, "publish", product.name, "--file", str(records), "--root", str(root))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"registered the descriptor of {product.name} in the catalog",
        f"{records}:3: not valid JSON (column 14): Expecting value",
        f"{records}:5: record does not fit schema sdktest.orders.OrderPlaced: "
        "quantity: expected int, got str 'x'",
        f"{records}:6: a record must be a JSON object, got an array",
        f"published 3 record(s) to {product.topic}; rejected 3 line(s); not published: "
        "line(s) 3, 5-6",
    ]
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 3

    tail = run(
        env, "tail", product.name, "--from-beginning", "--max", "3", "--timeout", "30",
        "--json", "--root", str(root),
    )  # fmt: skip
    assert tail.exit_code == 0, tail.stderr
    shown = [json.loads(line) for line in tail.stdout.splitlines()]
    expected = [as_json_line(decoded(make_order(i))) for i in range(3)]
    assert sorted(shown, key=lambda r: r["order_id"]) == expected

    human = run(
        env, "tail", product.name, "--from-beginning", "--max", "3", "--timeout", "30",
        "--root", str(root),
    )  # fmt: skip
    for line in human.stdout.splitlines():
        coordinates, rest = line.split(" key=", 1)
        assert coordinates.startswith(f"{product.topic}[")
        key = rest.split(" ", 1)[0]
        assert key in {make_order(i)["order_id"] for i in range(3)}


def test_all_or_nothing_publishes_nothing_when_a_line_is_bad(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    product = new_product("cli-aon", schema=PROJECT_SCHEMA_V1)
    root = repo_with(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    good = as_json_line(make_order(1))
    records.write_text(json.dumps(good) + "\n" + json.dumps({**good, "status": "LOST"}) + "\n")
    result = run(
        env, "publish", product.name, "-f", str(records), "--root", str(root), "--all-or-nothing"
    )
    assert result.exit_code == 1
    assert f"{records}:2: record does not fit schema" in result.stderr
    assert "published nothing: 1 bad line(s) and --all-or-nothing" in result.stderr
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 0


def test_records_piped_on_standard_input_are_checked_then_published_all_or_nothing(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    """`-f -` from a real pipe, which cannot be read twice: --all-or-nothing checks every line
    before sending any (the file is read line by line, never whole into memory; a pipe is
    then copied to a temporary file first)."""
    product = new_product("cli-pipe", schema=PROJECT_SCHEMA_V1)
    root = repo_with(product, tmp_path / "repo")
    good = [json.dumps(as_json_line(make_order(i))) for i in range(2_000)]
    command = [
        *MESH, "publish", product.name, "-f", "-", "--root", str(root), "--all-or-nothing"
    ]  # fmt: skip
    bad = "\n".join([*good[:1_500], '{"order_id": 1}', *good[1_500:]]) + "\n"
    refused = subprocess.run(
        command, input=bad, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        "published nothing: 1 bad line(s) and --all-or-nothing"
    )
    assert "<stdin>:1501: record does not fit schema" in refused.stderr
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 0
    done = subprocess.run(
        command, input="\n".join(good) + "\n", env={**os.environ, **env}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"published 2000 record(s) to {product.topic}"]
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 2_000


def test_records_piped_from_a_writer_that_goes_on_are_published_as_they_come(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    """Without --all-or-nothing a pipe is published line by line while its writer still
    writes (h50: it was copied whole to a temporary file first, so an endless pipe published
    nothing and filled the disk)."""
    product = new_product("cli-stream", schema=PROJECT_SCHEMA_V1)
    root = repo_with(product, tmp_path / "repo")
    lines = [json.dumps(as_json_line(make_order(i))) for i in range(150)]
    command = [*MESH, "publish", product.name, "-f", "-", "--root", str(root)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **env}, text=True,
    )  # fmt: skip
    try:
        assert process.stdin is not None
        process.stdin.write("\n".join([*lines[:100], '{"order_id": 1}']) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + 90
        while sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) < 100:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first lines were not published in 90 s"
            time.sleep(0.5)
        assert process.poll() is None  # still reading: the writer has not finished
        _out, err = process.communicate("\n".join(lines[100:]) + "\n", timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1, err
    assert "<stdin>:101: record does not fit schema" in err
    assert err.splitlines()[-1] == (
        f"published 150 record(s) to {product.topic}; rejected 1 line(s); not published: "
        f"line(s) 101"
    )
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 150


def test_the_partitioner_setting_keeps_a_topic_written_the_old_way_in_place(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    """MESH_PRODUCER_PARTITIONER=consistent_random places keys where librdkafka's CRC-32
    default put them (mesh-stream's publisher before murmur2), for `mesh publish` too."""
    product = new_product("cli-crc", schema=PROJECT_SCHEMA_V1)
    root = repo_with(product, tmp_path / "repo")
    orders = [as_json_line(make_order(i)) for i in range(40)]
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(order) + "\n" for order in orders))
    crc = {"MESH_PRODUCER_PARTITIONER": "consistent_random"}
    result = run({**env, **crc}, "publish", product.name, "-f", str(records), "--root", str(root))
    assert result.exit_code == 0, result.stderr
    placed = {
        m.key().decode(): m.partition()
        for m in read_raw(kafka.bootstrap_servers, product.topic, len(orders))
    }
    assert placed == {o["order_id"]: zlib.crc32(o["order_id"].encode()) % 3 for o in orders}
    assert placed != {o["order_id"]: key_partition(o["order_id"], 3) for o in orders}


def test_register_only_registers_the_schema_and_tail_finds_the_product_in_the_registry(
    env: dict[str, str], registry: RegistryAddress, tmp_path: Path
) -> None:
    named = new_product("cli-reg", schema=PROJECT_SCHEMA_V1)
    # Governance wants a registered product's contract at schemas/<domain>/<product>.avsc.
    short = named.name.split(".", 1)[1]
    product = named.model_copy(update={"schema_file": f"schemas/orders/{short}.avsc"})
    root = repo_with(product, tmp_path / "repo")
    result = run(env, "publish", product.name, "--register-only", "--root", str(root))
    assert result.exit_code == 0, result.stderr
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        latest = c.get_latest(product.value_subject)
        assert result.stdout.strip() == (
            f"registered schema id {latest.schema_id} under {product.value_subject}; "
            f"topic {product.topic} is ready"
        )
        c.put_product(product)
        records = tmp_path / "one.jsonl"
        records.write_text(json.dumps(as_json_line(make_order(4))) + "\n")
        empty_root = tmp_path / "elsewhere"
        empty_root.mkdir()
        published = run(env, "publish", product.name, "-f", str(records), "--root", str(root))
        assert published.exit_code == 0, published.stderr
        tail = run(
            env, "tail", product.name, "--from-beginning", "--max", "1", "--timeout", "30",
            "--json", "--root", str(empty_root),
        )  # fmt: skip
    assert tail.exit_code == 0, tail.stderr
    assert json.loads(tail.stdout) == as_json_line(decoded(make_order(4)))


def test_unknown_product_names_where_it_looked(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["tail", "orders.no-such-thing", "--root", str(tmp_path)], env=env
    )
    assert result.exit_code == 1
    assert "product orders.no-such-thing not found: no descriptor in" in str(result.exception)
