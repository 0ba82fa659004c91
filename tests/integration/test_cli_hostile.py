"""The data commands (`mesh publish`, `mesh tail`, `mesh products`) against the real broker
and registry, fed hostile input: each bad input is one line naming what and where, the good
records still arrive, and nothing ever prints a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.cli.main import INTERNAL_ERROR, run
from mesh_stream.descriptor import DataProduct
from mesh_stream.scaffold import scaffold
from mesh_stream.schema.codec import json_default
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    FIXTURES,
    PROJECT_SCHEMA_V1,
    end_offsets,
    make_order,
    new_product,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(kafka: KafkaAddress, registry: RegistryAddress, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("MESH_REGISTRY_URL", registry.url)
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "orders")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", registry.tokens["orders"])
    monkeypatch.delenv("MESH_DEBUG", raising=False)


def _repo(product: DataProduct, root: Path, schema: dict[str, Any] | None = None) -> Path:
    folder = root / "domains" / "orders" / "products"
    folder.mkdir(parents=True)
    (folder / f"{product.name.split('.', 1)[1]}.yaml").write_text(
        yaml.safe_dump(product.to_document())
    )
    target = root / product.schema_file
    target.parent.mkdir(parents=True, exist_ok=True)
    if schema is None:
        shutil.copy(FIXTURES / "order_v1.avsc", target)
    else:
        target.write_text(json.dumps(schema))
    return root


def _mesh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = run(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert status != INTERNAL_ERROR, err
    return status, out, err


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, default=json_default).encode() + b"\n"


@pytest.mark.usefixtures("env")
def test_publish_names_each_hostile_line_and_publishes_the_good_ones(
    kafka: KafkaAddress, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = new_product("cli-hostile", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(
        _line(make_order(0))
        + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n"  # 2: 100k deep
        + b'{"quantity": ' + b"9" * 5000 + b"}\n"  # 3: a 5000-digit number
        + b"\xff\xfe\x00\x01\n"  # 4: binary
        + b"[]\n"  # 5: not an object
        + _line({**make_order(1), "quantity": 2**40})  # 6: out of int range
        + _line(make_order(2))
    )  # fmt: skip
    status, _out, err = _mesh(
        ["publish", product.name, "-f", str(records), "--root", str(root)], capsys
    )
    registered, *lines = err.splitlines()
    assert status == 1
    assert registered == f"registered the descriptor of {product.name} in the catalog"
    assert lines[0] == f"{records}:2: JSON nested too deeply to read"
    assert lines[1] == (
        f"{records}:3: not valid JSON: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits"
    )
    assert lines[2] == (
        f"{records}:4: not UTF-8 text (byte 0xff at column 1); JSON Lines files must be UTF-8"
    )
    assert lines[3] == f"{records}:5: a record must be a JSON object, got an array"
    assert lines[4].startswith(f"{records}:6: ")
    assert "quantity" in lines[4]
    assert lines[5:] == [
        f"published 2 record(s) to {product.topic}; rejected 5 line(s); not published: line(s) 2-6"
    ]
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 2


@pytest.mark.usefixtures("env")
def test_a_schema_the_specification_forbids_is_refused_by_the_registry_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = json.loads((FIXTURES / "order_v1.avsc").read_text())
    schema["fields"][5]["default"] = 2**40  # quantity: an int
    product = new_product("cli-strict", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo", schema)
    status, _out, err = _mesh(
        ["publish", product.name, "--register-only", "--root", str(root)], capsys
    )
    assert status == 1
    assert err.splitlines() == [
        f"error: POST /subjects/{product.value_subject}/versions: Invalid schema: invalid Avro "
        "schema: sdktest.orders.OrderPlaced.quantity: default 1099511627776 is not an int "
        "(32-bit integer, -2147483648..2147483647) (HTTP 422, error_code 42201)"
    ]


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["publish", "orders..x", "-f", "README.md"],
            "error: 'orders..x' is not a product name `<domain>.<product>` (e.g. "
            "orders.order-placed)",
        ),
        (
            ["tail", "orders.nobody-knows", "--timeout", "1"],
            "error: product orders.nobody-knows not found: the registry at {url} does not "
            "know it; check the name with `mesh products list`, run inside the project "
            "holding its descriptor (mesh.yaml), or register it there first (`mesh products "
            "apply`) (HTTP 404, error_code 40404)",
        ),
        (
            ["products", "show", "orders.nobody-knows"],
            "error: GET /products/orders.nobody-knows: Product 'orders.nobody-knows' not "
            "found. (HTTP 404, error_code 40404)",
        ),
    ],
    ids=["publish orders..x", "tail unknown", "products show unknown"],
)
def test_hostile_names_and_addresses_are_one_line(
    args: list[str],
    expected: str,
    registry: RegistryAddress,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("{}\n")
    status, _out, err = _mesh(args, capsys)
    assert status == 1
    assert err.splitlines()[-1] == expected.format(url=registry.url)


def test_a_bad_bootstrap_port_is_a_usage_error_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["tail", "orders.order-placed", "--root", str(REPO), "--bootstrap-servers", "host:abc"]
    status, _out, err = _mesh(args, capsys)
    assert status == 2
    assert err.splitlines()[-1] == (
        "Error: Invalid value for '--bootstrap-servers': 'host:abc' has port 'abc' in "
        "'host:abc', not a port number (0-65535) (host:port[,host:port...], e.g. "
        "127.0.0.1:9092)"
    )


def test_a_bad_registry_port_is_a_usage_error_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["products", "list", "--registry-url", "http://127.0.0.1:99999"]
    status, _out, err = _mesh(args, capsys)
    assert status == 2
    assert err.splitlines()[-1] == (
        "Error: Invalid value for '--registry-url': 'http://127.0.0.1:99999' has port "
        "'99999', not a number from 1 to 65535 (e.g. http://127.0.0.1:8081)"
    )


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (
            ["products", "list", "--query", "x" * 100_000],
            1,
            "error: GET {url}/products: the request URL is not usable (URL component 'query' "
            "too long); check the names and filters given, and MESH_REGISTRY_URL / "
            "--registry-url",
        ),
        (["products", "list", "--domain", "\x00\x01"], 0, "0 product(s)"),
        (
            ["products", "list", "--tag", "\ud800"],
            1,
            "error: GET {url}/products: a name or filter holds text UTF-8 cannot encode "
            "(character 1: surrogates not allowed, e.g. a lone surrogate)",
        ),
        (
            ["products", "lineage", "orders.nobody-knows", "--json"],
            1,
            "error: GET /products/orders.nobody-knows/lineage: Product 'orders.nobody-knows' "
            "not found. (HTTP 404, error_code 40404)",
        ),
    ],
    ids=["100k query", "control characters", "lone surrogate", "lineage unknown"],
)
def test_products_with_hostile_filters_answer_in_one_line(
    args: list[str],
    status: int,
    expected: str,
    registry: RegistryAddress,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _mesh(args, capsys)
    assert (code, out, err) == (status, "", expected.format(url=registry.url) + "\n")


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    "extra",
    [["--max", "9" * 30], ["--group", "tail group \u00e9\u6f22"]],
    ids=["huge max", "spaces and non-ASCII in group"],
)
def test_tail_takes_odd_but_legal_options_and_shows_the_record(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = new_product("cli-tail-hostile", schema=PROJECT_SCHEMA_V1)
    root = _repo(product, tmp_path / "repo")
    records = tmp_path / "records.jsonl"
    records.write_bytes(_line(make_order(0)))
    published = _mesh(["publish", product.name, "-f", str(records), "--root", str(root)], capsys)
    assert published[0] == 0, published
    args = ["tail", product.name, "--from-beginning", "--timeout", "3", "--json"]
    code, out, err = _mesh([*args, "--root", str(root), *extra], capsys)
    assert (code, err) == (0, "")
    assert [json.loads(line)["order_id"] for line in out.splitlines()] == [
        "00000000-0000-0000-0000-000000000001"
    ]


@pytest.mark.parametrize("dry_run", [True, False])
def test_acl_apply_on_a_cluster_without_an_authorizer_says_so_even_as_a_dry_run(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    """The test broker runs no authorizer; Kafka 4 answers DescribeAcls there with an empty
    list, so a dry run said "would create 50 ACL(s)" and exited 0."""
    project = tmp_path / "orders-repo"
    scaffold("orders", project)
    flag = ["--dry-run"] if dry_run else []
    status, out, err = _mesh(["acl", "apply", "--project", str(project), *flag], capsys)
    assert status == 1
    assert "would create" not in out
    assert err.strip().endswith(
        "has no authorizer, so it keeps no ACLs (SECURITY_DISABLED): start it with `mesh "
        "broker start --security sasl` (or set authorizer.class.name on your brokers) and rerun"
    )
