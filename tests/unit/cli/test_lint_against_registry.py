"""`mesh lint --against-registry`: each local .avsc judged as the registry would judge it
as the next version (subject level + consumer protection), over a real registry server."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli, run
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.governance.conftest import answering_registry, silent_registry
from tests.unit.registry.conftest import descriptor

REPO = Path(__file__).resolve().parents[3]
PLACED = "orders.order-placed"
SCHEMA = REPO / "schemas" / "orders" / "order-placed.avsc"
READER = "analytics.order-value"


def _sample_descriptor() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "domains/orders/products/order-placed.yaml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    """A registry holding the sample orders.order-placed and a product whose field_lineage
    reads its total_amount."""
    running = RegistryServer(create_app(InMemoryStore()))
    address = running.start()
    with RegistryClient(address) as client:
        client.register_schema(f"{PLACED}.v1-value", SCHEMA.read_text())
        client.set_compatibility("BACKWARD", f"{PLACED}.v1-value")
        client.put_product(_sample_descriptor())
        value = {
            "type": "record",
            "name": "OrderValue",
            "doc": "Value of an order.",
            "fields": [{"name": "order_id", "type": "string", "doc": "The order."}],
        }
        client.register_schema(f"{READER}.v1-value", json.dumps(value))
        client.put_product(
            descriptor(
                READER,
                kind="aggregate",
                inputs=[PLACED],
                schema="schemas/analytics/order-value.avsc",
                field_lineage={"order_id": [f"{PLACED}:order_id", f"{PLACED}:total_amount"]},
            )
        )
    yield address
    running.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The orders domain's repository: the sample order-placed descriptor and schema."""
    products = tmp_path / "domains" / "orders" / "products"
    products.mkdir(parents=True)
    (products / "order-placed.yaml").write_text(yaml.safe_dump(_sample_descriptor()))
    (tmp_path / "schemas" / "orders").mkdir(parents=True)
    shutil.copy(SCHEMA, tmp_path / "schemas" / "orders" / "order-placed.avsc")
    (tmp_path / "mesh.yaml").write_text("domains: [orders]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return tmp_path


def _edit_schema(project: Path, change: Any) -> None:
    path = project / "schemas" / "orders" / "order-placed.avsc"
    document = json.loads(path.read_text())
    change(document["fields"])
    path.write_text(json.dumps(document, indent=2))


def _lint(url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        cli,
        ["lint", "--against-registry", *extra],
        env={"MESH_REGISTRY_URL": url, **(env or {})},
    )


def test_an_unchanged_schema_is_clean(project: Path, registry_url: str) -> None:
    result = _lint(registry_url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["violations"] == []


def test_removing_a_field_a_reader_reads_names_the_reader_field_line_and_fix(
    project: Path, registry_url: str
) -> None:
    _edit_schema(project, lambda fields: fields.pop(6))  # total_amount
    result = _lint(registry_url, "--json")
    assert result.exit_code == 1, result.output
    found = {(v["policy"], v["field"], v["file"]) for v in json.loads(result.stdout)["violations"]}
    assert found == {
        ("compatibility-with-consumers", "total_amount", "schemas/orders/order-placed.avsc")
    }
    [lineage, level] = json.loads(result.stdout)["violations"]
    assert lineage["message"] == (
        f"{PLACED}.v1-value: {READER} reads field total_amount (field_lineage), which the new "
        f"version removes"
    )
    assert lineage["fix"].startswith("keep the field and its type (deprecate it in its doc)")
    assert level["message"] == (
        f"{PLACED}.v1-value: field total_amount removed (the registered version has no "
        f"default for it) breaks {READER} (checked at FULL_TRANSITIVE)"
    )
    assert level["why"] == (
        "old consumers (reading with version 1) cannot read new records, which lack it"
    )
    text = _lint(registry_url)
    assert "schemas/orders/order-placed.avsc:1: error [compatibility-with-consumers]" in (
        text.stdout
    )


def test_retyping_a_field_breaks_the_subject_level_too_at_its_line(
    project: Path, registry_url: str
) -> None:
    def retype(fields: list[dict[str, Any]]) -> None:
        fields[3]["type"] = "int"  # region: string -> int

    _edit_schema(project, retype)
    result = _lint(registry_url, "--json")
    assert result.exit_code == 1, result.output
    violations = json.loads(result.stdout)["violations"]
    subject_level = [v for v in violations if v["policy"] == "schema-compatibility"]
    assert [v["message"] for v in subject_level] == [
        f"{PLACED}.v1-value: field region type changed from string to int breaks the "
        f"subject's level BACKWARD"
    ]
    assert subject_level[0]["line"] > 1
    assert "Avro promotes only" in subject_level[0]["fix"]


def test_a_compatible_change_is_clean(project: Path, registry_url: str) -> None:
    optional = {"name": "coupon", "type": ["null", "string"], "default": None, "doc": "Code."}
    _edit_schema(project, lambda fields: fields.append(optional))
    result = _lint(registry_url, "--json")
    assert result.exit_code == 0, result.output


def _run_cli(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, str]:
    """The console script's way: every error becomes one `error:` line on stderr."""
    monkeypatch.setenv("MESH_REGISTRY_URL", url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    status = run(["lint", "--against-registry"])
    return status, capsys.readouterr().err


def test_an_unreachable_registry_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    status, err = _run_cli(url, monkeypatch, capsys)
    assert status == 1
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: cannot compare with the registry at {url}: it is unreachable; start it "
        f"(`mesh registry serve`) or set MESH_REGISTRY_URL to the mesh's registry, or drop "
        f"--against-registry"
    )


def test_a_refused_credential_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(
        InMemoryStore(), credentials=Credentials({"admin": "s3cret"}), read_requires_auth=True
    )
    running = RegistryServer(app)
    url = running.start()
    try:
        status, err = _run_cli(
            url,
            monkeypatch,
            capsys,
            MESH_REGISTRY_PRINCIPAL="admin",
            MESH_REGISTRY_TOKEN="wrong-secret",
        )
    finally:
        running.stop()
    assert status == 1
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: cannot compare with the registry at {url}: it refused")
    assert "set MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN" in line
    assert "wrong-secret" not in err


def test_a_subject_without_its_product_is_judged_against_its_latest_version(
    project: Path,
) -> None:
    """The schema was registered before the descriptor (apply's order): the subject's level
    still applies; nobody can read an unregistered product, so no consumer protection."""
    running = RegistryServer(create_app(InMemoryStore()))
    url = running.start()
    try:
        with RegistryClient(url) as client:
            client.register_schema(f"{PLACED}.v1-value", SCHEMA.read_text())

        def retype(fields: list[dict[str, Any]]) -> None:
            fields[3]["type"] = "int"  # region: string -> int

        _edit_schema(project, retype)
        result = _lint(url, "--json")
    finally:
        running.stop()
    assert result.exit_code == 1, result.output
    [violation] = json.loads(result.stdout)["violations"]
    assert (violation["policy"], violation["field"], violation["product"]) == (
        "schema-compatibility",
        "region",
        PLACED,
    )
    assert violation["message"].endswith("breaks the subject's level BACKWARD")


# -- registries that answer badly (hostile-input campaign) --------------------------------

SCHEMAS = f"/products/{PLACED}/schemas"
SUBJECT = f"{PLACED}.v1-value"
LEVEL = {f"/config/{SUBJECT}": {"compatibilityLevel": "BACKWARD"}}


def test_a_registry_that_never_answers_is_said_to_not_answer_within_the_timeout(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It accepted the connection: "unreachable" sent the author to start a running registry."""
    from mesh_stream.cli import lint as lint_cli

    monkeypatch.setattr(lint_cli, "LOOKUP_TIMEOUT", 0.3)
    with silent_registry() as url:
        status, err = _run_cli(url, monkeypatch, capsys)
    assert status == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: cannot compare with the registry at {url}: it accepted the connection but did "
        f"not answer GET {SCHEMAS} within 0.3 s; it is up but busy or stuck (a slow Kafka "
        f"under it?), or MESH_REGISTRY_URL points at something else that listens; check it "
        f"and run again, or drop --against-registry"
    )


def test_a_registry_answering_that_it_is_unavailable_is_quoted_not_called_unreachable(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = (503, {"error_code": 50302, "message": "the store is replaying"})
    with answering_registry({"/": answer}) as url:
        status, err = _run_cli(url, monkeypatch, capsys)
    assert status == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: cannot compare with the registry at {url}: it answered that it cannot serve "
        f"now (GET {SCHEMAS}: the store is replaying (HTTP 503, error_code 50302)); run again "
        f"once it is back (its log says why), or drop --against-registry"
    )


@pytest.mark.parametrize(
    ("routes", "which"),
    [
        (
            {SCHEMAS: [{"version": 3, "subject": SUBJECT, "schema": "oops, not JSON"}]},
            "version 3",
        ),
        (  # no product registered: the subject's latest version is the one compared with
            {
                f"/subjects/{SUBJECT}/versions/latest": {
                    "subject": SUBJECT,
                    "version": 2,
                    "id": 7,
                    "schema": "oops, not JSON",
                }
            },
            "the latest version",
        ),
    ],
    ids=["product history", "subject latest"],
)
def test_a_registered_version_that_is_not_avro_is_named_with_where_it_is_held(
    project: Path,
    routes: dict[str, Any],
    which: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It used to read as if the local .avsc were broken ("invalid Avro schema: ...")."""
    with answering_registry(routes) as url:
        with_secret = url.replace("http://", "http://admin:s3cret-token@")
        status, err = _run_cli(with_secret, monkeypatch, capsys)
    assert status == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: {which} of subject {SUBJECT} (product {PLACED}) held by the "
        f"registry at {url} is not usable: invalid Avro schema: not valid JSON at line 1 "
        f"column 1: Expecting value; no local schema can be judged against it until the "
        f"registry's operator repairs or deletes that version"
    )
    assert "s3cret-token" not in err


@pytest.mark.parametrize("owner", [None, "", "  "], ids=["null", "empty", "blank"])
def test_a_consumer_group_without_an_owner_is_said_to_have_none_recorded(
    project: Path, owner: str | None
) -> None:
    """A registration with ``owner: null`` was named "(owner None)"."""
    routes = {
        SCHEMAS: [{"version": 1, "subject": SUBJECT, "schema": SCHEMA.read_text()}],
        **LEVEL,
        f"/products/{PLACED}": {"name": PLACED, "registry": {"downstream": []}},
        f"/products/{PLACED}/consumers": [
            {"group": "billing", "owner": owner, "reads": ["total_amount"]}
        ],
    }
    _edit_schema(project, lambda fields: fields.pop(6))  # total_amount
    with answering_registry(routes) as url:
        result = _lint(url, "--json")
    assert result.exit_code == 1, result.output
    messages = [v["message"] for v in json.loads(result.stdout)["violations"]]
    assert messages[0] == (
        f"{SUBJECT}: consumer group 'billing' (owner not recorded) reads field total_amount "
        f"(registered reads), which the new version removes"
    )
    assert "None" not in result.stdout
    assert "(owner )" not in result.stdout


def test_a_schema_dropping_a_pii_mark_the_registry_holds_is_an_error_at_its_field(
    project: Path, registry_url: str
) -> None:
    """The registry refuses a version that keeps a field its latest version marks PII
    without the mark; lint saw only the local schema and passed it (h32)."""
    name = "orders.order-contact"
    fields: list[dict[str, Any]] = [
        {"name": "order_id", "type": "string", "doc": "The order."},
        {"name": "email", "type": "string", "doc": "The buyer's e-mail.", "pii": True},
    ]
    marked = {
        "type": "record",
        "name": "OrderContact",
        "doc": "Who to contact about an order.",
        "fields": fields,
    }
    with RegistryClient(registry_url) as client:
        client.register_schema(f"{name}.v1-value", json.dumps(marked))
    document = {
        **_sample_descriptor(),
        "name": name,
        "schema": "schemas/orders/order-contact.avsc",
        "classification": "pii",
    }
    (project / "domains/orders/products/order-contact.yaml").write_text(yaml.safe_dump(document))
    schema_file = project / "schemas/orders/order-contact.avsc"
    schema_file.write_text(json.dumps(marked, indent=2))
    assert _lint(registry_url).exit_code == 0  # the mark kept: nothing to say
    del fields[1]["pii"]
    one_per_line = ",\n    ".join(json.dumps(f) for f in fields)
    schema_file.write_text(
        '{"type": "record", "name": "OrderContact", "doc": "Who to contact.",\n'
        f'  "fields": [\n    {one_per_line}\n  ]\n}}\n'
    )
    result = _lint(registry_url, "--json")
    assert result.exit_code == 1, result.output
    [dropped] = json.loads(result.stdout)["violations"]
    assert (dropped["policy"], dropped["field"], dropped["file"], dropped["line"]) == (
        "pii-classification",
        "email",
        "schemas/orders/order-contact.avsc",
        next(
            n for n, line in enumerate(schema_file.read_text().splitlines(), 1) if '"email"' in line
        ),
    )
    assert dropped["message"].startswith(
        "field OrderContact.email was marked PII in the subject's latest version and this "
        "version drops the mark"
    )
    assert CliRunner().invoke(cli, ["lint"]).exit_code == 0  # only the registry knows
