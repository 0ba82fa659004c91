"""`mesh publish` / `mesh tail` on inputs a real user gets wrong, against the real broker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError
from mesh_stream.schema.codec import json_default
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import FIXTURES, decoded, end_offsets, make_order, new_product


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
    product = new_product("cli-utf8")
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
        f"{records}:2: not UTF-8 text (byte 0xe9 at column {column}); JSON Lines files must "
        "be UTF-8",
        f"published 2 record(s) to {product.topic}; rejected 1 line(s)",
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
    product = new_product("cli-schema")
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
    product = new_product("cli-notopic")
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
