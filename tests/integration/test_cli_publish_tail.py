"""`mesh publish` / `mesh tail` on inputs a real user gets wrong, against the real broker."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from mesh_stream.cli.main import cli
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, ConsumerError
from mesh_stream.schema.codec import json_default
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    FIXTURES,
    PROJECT_SCHEMA_V1,
    decoded,
    end_offsets,
    make_order,
    new_product,
)


@pytest.fixture
def env(kafka: KafkaAddress, registry: RegistryAddress) -> dict[str, str]:
    return {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "orders",
        "MESH_REGISTRY_TOKEN": registry.tokens["orders"],
    }


def _repo(product: DataProduct, root: Path, *, mesh_yaml: bool = True) -> Path:
    """A project holding ``product``; without ``mesh_yaml``, the folder the old --root took."""
    folder = root / "domains" / "orders" / "products"
    folder.mkdir(parents=True)
    (folder / f"{product.name.split('.', 1)[1]}.yaml").write_text(
        yaml.safe_dump(product.to_document())
    )
    schema = root / product.schema_file
    schema.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "order_v1.avsc", schema)
    if mesh_yaml:
        (root / "mesh.yaml").write_text("domains: [orders]\n")
    return root


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, default=json_default).encode() + b"\n"


def test_a_line_that_is_not_utf8_is_named_and_the_good_lines_are_published(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    product = new_product("cli-utf8", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    bad = b'{"order_id": "caf\xe9"}\n'
    records = tmp_path / "records.jsonl"
    records.write_bytes(_line(make_order(0)) + bad + _line(make_order(1)))
    column = bad.index(b"\xe9") + 1

    result = CliRunner().invoke(
        cli, ["publish", product.name, "-f", str(records), "--project", str(root)], env=env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"registered the descriptor of {product.name} in the catalog",
        f"{records}:2: not UTF-8 text (byte 0xe9 at column {column}); JSON Lines files must "
        "be UTF-8",
        f"published 2 record(s) to {product.topic}; rejected 1 line(s); not published: line(s) 2",
    ]
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 2

    tail = CliRunner().invoke(
        cli,
        ["tail", product.name, "--from-beginning", "--max", "2", "--timeout", "30", "--json",
         "--project", str(root)],
        env=env,
    )  # fmt: skip
    assert tail.exit_code == 0, tail.stderr
    shown = sorted((json.loads(line) for line in tail.stdout.splitlines()), key=str)
    expected = [json.loads(_line(decoded(make_order(i)))) for i in (0, 1)]
    assert shown == sorted(expected, key=str)


def test_a_schema_file_that_is_not_json_is_named_with_line_and_column(
    env: dict[str, str], tmp_path: Path
) -> None:
    product = new_product("cli-schema", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    broken = tmp_path / "broken.avsc"
    broken.write_text('{"type": "record",\n "name": }\n')
    records = tmp_path / "records.jsonl"
    records.write_bytes(_line(make_order(0)))
    result = CliRunner().invoke(
        cli,
        ["publish", product.name, "-f", str(records), "--schema", str(broken), "--project",
         str(root)],
        env=env,
    )  # fmt: skip
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{broken}:2: --schema is not valid JSON (column 10): Expecting value"
    )


def test_tail_says_when_the_products_topic_does_not_exist_yet(
    env: dict[str, str], tmp_path: Path
) -> None:
    product = new_product("cli-notopic", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo", mesh_yaml=False)
    result = CliRunner().invoke(  # the old --root still takes a folder without mesh.yaml
        cli, ["tail", product.name, "--timeout", "1", "--root", str(root)], env=env
    )
    assert result.exit_code == 0, result.exception
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"topic {product.topic} does not exist yet at {env['MESH_BOOTSTRAP_SERVERS']}; waiting "
        f"for its first record (publish with `mesh publish {product.name} --file FILE`)"
    ]


def test_tail_says_it_waits_for_a_registry_that_does_not_answer_and_fails_at_its_timeout(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    """Records are there, but their writer schema is not cached and the registry is away:
    tail says so once, and --timeout ends with an error (exit 1), never an empty success."""
    product = new_product("cli-noregistry", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(_line(make_order(i)) for i in range(3)))
    assert _publish(env, root, product, "-f", str(records)).exit_code == 0
    away = {**env, "MESH_REGISTRY_URL": "http://127.0.0.1:1"}
    result = CliRunner().invoke(
        cli,
        ["tail", product.name, "--from-beginning", "--timeout", "2", "--project", str(root)],
        env={**away, "MESH_CONSUMER_REGISTRY_WAIT_SECONDS": "60"},
    )
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "the registry at http://127.0.0.1:1 does not answer: records whose writer schema is "
        "not cached wait, with the later records of their partitions, up to 60 s "
        "(MESH_CONSUMER_REGISTRY_WAIT_SECONDS)"
    ]
    assert isinstance(result.exception, ConsumerError)  # `mesh` says it as `error: ...`, exit 1
    assert str(result.exception).startswith(
        f"{product.topic}: stopped after --timeout 2 s with records still waiting for a writer "
        "schema from the registry at http://127.0.0.1:1 (failing for "
    )


def test_a_registry_away_past_its_wait_stops_tail_with_a_message_for_the_command_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    """When records waited MESH_CONSUMER_REGISTRY_WAIT_SECONDS for the registry, tail ends
    naming that setting and the registry, not the SDK's `consume() again` advice."""
    product = new_product("cli-registry-wait", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(_line(make_order(i)) for i in range(2)))
    assert _publish(env, root, product, "-f", str(records)).exit_code == 0
    away = {**env, "MESH_REGISTRY_URL": "http://127.0.0.1:1"}
    result = CliRunner().invoke(
        cli,
        ["tail", product.name, "--from-beginning", "--project", str(root)],
        env={**away, "MESH_CONSUMER_REGISTRY_WAIT_SECONDS": "1"},
    )
    assert isinstance(result.exception, ConsumerError), result.output
    message = str(result.exception)
    assert re.fullmatch(
        rf"{re.escape(product.topic)}\[\d+\]@\d+: stopped: it waited 1 s "
        r"\(MESH_CONSUMER_REGISTRY_WAIT_SECONDS\) for writer schema id \d+ from the registry at "
        r"http://127\.0\.0\.1:1, which does not answer; start the registry or check "
        r"MESH_REGISTRY_URL, then run tail again \(it commits nothing, so nothing is skipped\)",
        message,
    ), message
    assert "consume()" not in message
    assert "last commit" not in message


def test_a_short_timeout_counts_from_the_join_and_a_signal_ends_tail_as_ctrl_c(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`--timeout 0.001` waits for the group to give tail its partitions before counting, and
    for the records Kafka says they hold (the first fetch takes longer), so every record is
    shown; SIGINT and SIGTERM mid-stream end tail with 130 (as Ctrl-C ends
    every command), the records it printed kept in the file it printed them to."""
    product = new_product("cli-tail-signals", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(_line(make_order(i)) for i in range(7)))
    assert _publish(env, root, product, "-f", str(records)).exit_code == 0
    mesh = str(Path(sys.executable).with_name("mesh"))
    tail = [mesh, "tail", product.name, "--from-beginning", "--json", "--project", str(root)]
    quick = subprocess.run(
        [*tail, "--timeout", "0.001"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert quick.returncode == 0, quick.stderr
    assert len(quick.stdout.splitlines()) == 7
    for signum in (signal.SIGINT, signal.SIGTERM):
        printed = tmp_path / f"tail-{signum.name}.jsonl"
        with printed.open("wb") as out:
            running = subprocess.Popen(
                tail, env={**os.environ, **env}, stdout=out, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 60
            while len(printed.read_bytes().splitlines()) < 7:
                assert running.poll() is None, signum
                assert time.monotonic() < deadline, signum
                time.sleep(0.2)
            running.send_signal(signum)
            assert running.wait(30) == 130, (signum, running.stderr and running.stderr.read())
        # the same records; across the three partitions their order is the fetches' own
        assert sorted(
            json.loads(line)["order_id"] for line in printed.read_bytes().splitlines()
        ) == sorted(json.loads(line)["order_id"] for line in quick.stdout.splitlines())


def _publish(env: dict[str, str], root: Path, product: DataProduct, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["publish", product.name, *args, "--project", str(root)], env=env
    )


@pytest.mark.parametrize("all_or_nothing", [False, True])
def test_an_oversize_line_is_named_and_the_other_lines_are_published_or_none(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path, all_or_nothing: bool
) -> None:
    product = new_product("cli-huge", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    orders = [make_order(i) for i in range(6)]
    orders[2]["customer_email"] = "x" * 3_000_000
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(_line(order) for order in orders))
    flag = ["--all-or-nothing"] if all_or_nothing else []

    result = _publish(env, root, product, "-f", str(records), *flag)
    assert result.exit_code == 1, result.stderr
    registered, *lines = result.stderr.splitlines()
    assert registered == f"registered the descriptor of {product.name} in the catalog"
    assert lines[0].startswith(f"{records}:3: record of {product.name} is 300")
    assert lines[0].endswith(
        " bytes encoded, over the producer's limit of 1000000 bytes (message.max.bytes; the "
        "broker's message.max.bytes and the topic's max.message.bytes cap it too); it was not "
        "published"
    )
    if all_or_nothing:
        assert lines[1:] == ["published nothing: 1 bad line(s) and --all-or-nothing"]
        assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 0
    else:
        assert lines[1:] == [
            f"published 5 record(s) to {product.topic}; rejected 1 line(s); not published: "
            "line(s) 3"
        ]
        assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 5


def test_a_line_the_broker_refuses_for_its_size_is_named_and_the_others_arrive(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    """Under the producer's limit but over the topic's max.message.bytes: only the broker can
    refuse it, at delivery. The line is still named, and the lines sent with it arrive."""
    product = new_product("cli-sized", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    assert _publish(env, root, product, "--register-only").exit_code == 0  # the topic
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    limit = ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", product.topic, incremental_configs=[limit])
    admin.incremental_alter_configs([resource])[resource].result(30)
    orders = [make_order(i) for i in range(40)]
    noise = "".join(random.Random(3).choices(string.ascii_letters, k=50_000))  # incompressible
    orders[7]["customer_email"] = noise
    orders[7]["order_id"] = orders[8]["order_id"]  # the same key as the next line
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(_line(order) for order in orders))

    result = _publish(env, root, product, "-f", str(records))
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: 1 record(s) of {product.name} were not delivered")
    assert lines[1].startswith(f"{records}:8: not delivered: refused by the broker as too large")
    assert f"over the limit of topic {product.topic} (its max.message.bytes)" in lines[1]
    assert lines[2:] == [
        f"published 39 record(s) to {product.topic}; 1 record(s) not acknowledged by Kafka; "
        "not published: line(s) 8"
    ]
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 39


def test_decimals_over_the_precision_in_exponent_form_are_rejected_like_plain_ones(
    env: dict[str, str], kafka: KafkaAddress, tmp_path: Path
) -> None:
    product = new_product("cli-decimal", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    totals: list[Any] = ["12345678901234.00", "99999999.99", "1e12", "1E+15", 1e308, "1e400",
                         "-1e-5", "-0", "1e2"]  # fmt: skip
    lines = []
    for index, total in enumerate(totals):
        line = json.loads(_line(make_order(index)))
        line["total"] = total
        lines.append(json.dumps(line).encode() + b"\n")
    records = tmp_path / "records.jsonl"
    records.write_bytes(b"".join(lines))

    result = _publish(env, root, product, "-f", str(records))
    assert result.exit_code == 1
    shown = {1: "12345678901234.00", 3: "1E+12", 4: "1E+15", 5: "1E+308", 6: "1E+400"}
    registered, *lines = result.stderr.splitlines()
    assert registered == f"registered the descriptor of {product.name} in the catalog"
    assert lines == [
        f"{records}:{number}: record does not fit schema {product_schema_name()}: total: "
        f"expected decimal(12,2) (at most 12 digits), got {value}"
        for number, value in shown.items()
    ] + [
        f"{records}:7: record does not fit schema {product_schema_name()}: total: expected "
        "decimal(12,2) with at most 2 decimal place(s), got -0.00001",
        f"published 3 record(s) to {product.topic}; rejected 6 line(s); not published: "
        "line(s) 1, 3-7",
    ]
    tail = CliRunner().invoke(
        cli,
        ["tail", product.name, "--from-beginning", "--max", "3", "--timeout", "30", "--json",
         "--project", str(root)],
        env=env,
    )  # fmt: skip
    assert tail.exit_code == 0, tail.stderr
    assert sorted(json.loads(line)["total"] for line in tail.stdout.splitlines()) == [
        "0.00", "100.00", "99999999.99"
    ]  # fmt: skip


def product_schema_name() -> str:
    document = json.loads((FIXTURES / "order_v1.avsc").read_text())
    return f"{document.get('namespace')}.{document['name']}".lstrip(".")


def test_null_and_lone_surrogate_lines_are_named_in_json_terms_and_by_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    product = new_product("cli-null", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    surrogate = json.loads(_line(make_order(1)))
    surrogate["customer_email"] = "\ud800"
    records = tmp_path / "records.jsonl"
    records.write_bytes(
        b"null\n[1]\n" + json.dumps(surrogate).encode() + b"\n" + _line(make_order(0))
    )
    result = _publish(env, root, product, "-f", str(records))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"registered the descriptor of {product.name} in the catalog",
        f"{records}:1: a record must be a JSON object, got null",
        f"{records}:2: a record must be a JSON object, got an array",
        f"{records}:3: record does not fit schema {product_schema_name()}: customer_email: "
        "expected string (Unicode text), got a lone surrogate '\\ud800' at character 1, which "
        "UTF-8 cannot encode",
        f"published 1 record(s) to {product.topic}; rejected 3 line(s); not published: line(s) 1-3",
    ]


def test_register_only_with_a_file_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    product = new_product("cli-regonly", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(_line(make_order(0)))
    result = _publish(env, root, product, "--register-only", "-f", str(records))
    assert result.exit_code == 2
    assert "--register-only publishes no records: drop --file/-f" in result.stderr


def test_a_schema_the_registry_refuses_is_named_as_the_schema_option(
    env: dict[str, str], tmp_path: Path
) -> None:
    product = new_product("cli-refused", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    first = _publish(env, root, product, "--register-only")
    assert first.exit_code == 0, first.stderr
    incompatible = json.loads((FIXTURES / "order_v1.avsc").read_text())
    for field in incompatible["fields"]:
        if field["name"] == "quantity":
            field["type"] = "boolean"
    schema = tmp_path / "incompatible.avsc"
    schema.write_text(json.dumps(incompatible))
    records = tmp_path / "records.jsonl"
    records.write_bytes(_line(make_order(0)))

    result = _publish(env, root, product, "-f", str(records), "--schema", str(schema))
    assert result.exit_code != 0
    assert str(result.exception).startswith(
        f"--schema {schema}: the registry refused the value schema of {product.name} (subject "
        f"{product.value_subject}): "
    ), result.exception
