"""DataHub metadata change proposals of the sample mesh, and their POST to a GMS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.exports import datahub
from mesh_stream.exports.source import ExportedProduct, local_product
from mesh_stream.project import load_project
from tests.unit.exports.schemas import ADDRESS_REUSED, RECURSIVE

ROOT = Path(__file__).resolve().parents[3]
C360 = "urn:li:dataset:(urn:li:dataPlatform:kafka,analytics.customer-360.v1,PROD)"
PROFILE = "urn:li:dataset:(urn:li:dataPlatform:kafka,customers.customer-profile.v1,PROD)"


@pytest.fixture(scope="module")
def sample() -> list[ExportedProduct]:
    project = load_project(ROOT)
    return [local_product(project, p.name, reason="test") for p in project.descriptors()]


@pytest.fixture(scope="module")
def mcps(sample: list[ExportedProduct]) -> list[dict[str, Any]]:
    return datahub.proposals(sample)


def aspect(mcps: list[dict[str, Any]], urn: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in mcps if m["entityUrn"] == urn and m["aspectName"] == name]
    assert found["changeType"] == "UPSERT"
    return dict(found["aspect"]["json"])


def test_every_product_has_its_aspects(
    sample: list[ExportedProduct], mcps: list[dict[str, Any]]
) -> None:
    for item in sample:
        urn = datahub.dataset_urn(item.product.topic)
        names = {m["aspectName"] for m in mcps if m["entityUrn"] == urn}
        expected = {
            "datasetProperties",
            "subTypes",
            "schemaMetadata",
            "ownership",
            "globalTags",
            "domains",
        }
        assert names == (expected | {"upstreamLineage"} if item.product.inputs else expected)
    json.dumps(mcps)


def test_owner_tags_classification_and_domain(mcps: list[dict[str, Any]]) -> None:
    owners = aspect(mcps, C360, "ownership")["owners"]
    assert owners == [{"owner": "urn:li:corpGroup:analytics-platform", "type": "TECHNICAL_OWNER"}]
    tags = [t["tag"] for t in aspect(mcps, C360, "globalTags")["tags"]]
    assert tags == [
        "urn:li:tag:analytics",
        "urn:li:tag:customers",
        "urn:li:tag:profile",
        "urn:li:tag:classification-internal",
    ]
    assert aspect(mcps, C360, "domains") == {"domains": ["urn:li:domain:analytics"]}
    properties = aspect(mcps, C360, "datasetProperties")
    assert properties["customProperties"]["classification"] == "internal"
    assert properties["customProperties"]["owner.contact"] == (
        "analytics-platform@meshstream.example"
    )


def test_upstream_and_fine_grained_lineage(mcps: list[dict[str, Any]]) -> None:
    lineage = aspect(mcps, C360, "upstreamLineage")
    assert [u["dataset"] for u in lineage["upstreams"]] == [
        PROFILE,
        "urn:li:dataset:(urn:li:dataPlatform:kafka,customers.engagement-event.v1,PROD)",
        "urn:li:dataset:(urn:li:dataPlatform:kafka,orders.order-placed.v1,PROD)",
    ]
    fine = {f["downstreams"][0]: f["upstreams"] for f in lineage["fineGrainedLineages"]}
    assert fine[f"urn:li:schemaField:({C360},segment)"] == [
        f"urn:li:schemaField:({PROFILE},segment)"
    ]
    assert len(fine) == 8


def test_schema_fields_docs_pii_tags_and_nesting(
    sample: list[ExportedProduct], mcps: list[dict[str, Any]]
) -> None:
    schema = aspect(mcps, PROFILE, "schemaMetadata")
    fields = {f["fieldPath"]: f for f in schema["fields"]}
    pii = {path for path, f in fields.items() if "globalTags" in f}
    assert pii == {"full_name", "email", "phone"}
    assert fields["email"]["globalTags"] == {"tags": [{"tag": "urn:li:tag:pii"}]}
    assert fields["phone"]["nullable"] is True
    assert fields["customer_id"]["isPartOfKey"] is True
    assert fields["segment"]["type"] == {"type": {"com.linkedin.schema.EnumType": {}}}
    document = schema["platformSchema"]["com.linkedin.schema.KafkaSchema"]
    assert document["documentSchemaType"] == "AVRO"
    placed = aspect(
        mcps,
        "urn:li:dataset:(urn:li:dataPlatform:kafka,orders.order-placed.v1,PROD)",
        "schemaMetadata",
    )
    paths = [f["fieldPath"] for f in placed["fields"]]
    assert paths[paths.index("items") + 1 : paths.index("items") + 4] == [
        "items.sku",
        "items.quantity",
        "items.unit_price",
    ]
    for item in sample:  # every doc of every .avsc
        described = aspect(mcps, datahub.dataset_urn(item.product.topic), "schemaMetadata")
        docs = {f["fieldPath"]: f.get("description") for f in described["fields"]}
        for field in item.schema["fields"]:
            assert docs[field["name"]] == field["doc"]


def schema_field_rows(
    sample: list[ExportedProduct], schema: dict[str, Any]
) -> list[tuple[str, str, str, bool, bool]]:
    """(fieldPath, DataHub type, native type, nullable, recursive) of each schema field."""
    item = ExportedProduct(product=sample[0].product, schema=schema)
    mcps = datahub.proposals([item])
    fields = aspect(mcps, datahub.dataset_urn(item.product.topic), "schemaMetadata")["fields"]
    return [
        (
            f["fieldPath"],
            next(iter(f["type"]["type"])).rpartition(".")[2],
            f["nativeDataType"],
            f["nullable"],
            f["recursive"],
        )
        for f in fields
    ]


def test_every_use_of_a_named_record_lists_its_fields(sample: list[ExportedProduct]) -> None:
    assert schema_field_rows(sample, ADDRESS_REUSED) == [
        ("home", "RecordType", "Address", False, False),
        ("home.city", "StringType", "string", False, False),
        ("work", "RecordType", "Address", False, False),
        ("work.city", "StringType", "string", False, False),
        ("maybe", "RecordType", "Address", True, False),
        ("maybe.city", "StringType", "string", False, False),
        ("past", "ArrayType", "array<Address>", False, False),
        ("past.city", "StringType", "string", False, False),
    ]


def test_a_record_inside_itself_is_listed_once_and_marked_recursive(
    sample: list[ExportedProduct],
) -> None:
    assert schema_field_rows(sample, RECURSIVE) == [
        ("root", "RecordType", "Node", False, False),
        ("root.value", "NumberType", "long", False, False),
        ("root.next", "RecordType", "Node", True, True),
        ("parent", "RecordType", "Tree", True, True),
    ]


def test_domains_and_data_products(
    sample: list[ExportedProduct], mcps: list[dict[str, Any]]
) -> None:
    domains = [m for m in mcps if m["entityType"] == "domain"]
    assert [m["entityUrn"] for m in domains] == [
        f"urn:li:domain:{d}" for d in sorted({i.product.domain for i in sample})
    ]
    properties = aspect(mcps, "urn:li:dataProduct:analytics.customer-360", "dataProductProperties")
    assert [a["destinationUrn"] for a in properties["assets"]] == [C360]
    assert aspect(mcps, "urn:li:dataProduct:analytics.customer-360", "domains") == {
        "domains": ["urn:li:domain:analytics"]
    }


# -- POST to a GMS --------------------------------------------------------------------------


class Gms(ThreadingHTTPServer):
    """Records each request; answers ``status``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.html = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Gms

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.requests.append((self.path, dict(self.headers.items()), body))
        if self.server.html:  # a web server's error page (501), or a refused token's (401)
            status = 501 if self.server.status < 400 else self.server.status
            self.send_error(status, "Unsupported method ('POST')")
            return
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "nope"}' if self.server.status >= 400 else b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def gms() -> Iterator[Gms]:
    server = Gms()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_post_sends_each_proposal_with_the_token(gms: Gms, mcps: list[dict[str, Any]]) -> None:
    chosen = [m for m in mcps if m["entityUrn"] == C360]
    assert datahub.post_proposals(chosen, gms.url + "/", token="tok-123") == len(chosen)
    assert len(gms.requests) == len(chosen)
    for (path, headers, body), mcp in zip(gms.requests, chosen, strict=True):
        assert path == "/aspects?action=ingestProposal"
        assert headers["Authorization"] == "Bearer tok-123"
        assert headers["X-RestLi-Protocol-Version"] == "2.0.0"
        proposal = body["proposal"]
        assert proposal["entityUrn"] == C360
        assert proposal["aspectName"] == mcp["aspectName"]
        assert proposal["aspect"]["contentType"] == "application/json"
        assert json.loads(proposal["aspect"]["value"]) == mcp["aspect"]["json"]


def test_a_refusal_names_what_was_refused_never_the_token(
    gms: Gms, mcps: list[dict[str, Any]]
) -> None:
    gms.status = 401
    with pytest.raises(MeshError, match="refused urn:li:domain:analytics domainProperties") as err:
        datahub.post_proposals(mcps, gms.url, token="tok-secret")
    assert "HTTP 401" in str(err.value)
    assert "tok-secret" not in str(err.value)
    assert len(gms.requests) == 1  # stops at the first refusal


def test_a_refusal_gives_gms_s_message_or_says_what_answered_instead_in_one_line(
    gms: Gms, mcps: list[dict[str, Any]]
) -> None:
    """A web server's HTML error page was printed whole, cut mid-sentence (a campaign)."""
    gms.status = 422
    with pytest.raises(MeshError) as err:
        datahub.post_proposals(mcps, gms.url)
    assert str(err.value).endswith("domainProperties: HTTP 422 nope")
    gms.status, gms.html = 200, True  # a web server answering POST with its 501 page
    with pytest.raises(MeshError) as err:
        datahub.post_proposals(mcps, gms.url)
    said = str(err.value)
    assert "\n" not in said
    assert "<" not in said
    assert said.endswith(
        "domainProperties: HTTP 501 with text/html, not a DataHub GMS answer; is --gms-url the "
        "GMS (its REST API, port 8080 by default), not the DataHub frontend?"
    )


@pytest.mark.parametrize(
    ("token", "fix"),
    [
        (None, "set MESH_DATAHUB_TOKEN to a DataHub access token (metadata service "
               "authentication is on)"),
        ("tok-secret", "check that MESH_DATAHUB_TOKEN is a valid DataHub access token "
                       "allowed to ingest"),
    ],
)  # fmt: skip
def test_a_refused_credential_names_the_token_setting_not_the_url(
    gms: Gms, mcps: list[dict[str, Any]], token: str | None, fix: str
) -> None:
    """A GMS refusing the token with an HTML page was called 'not a DataHub GMS answer; is
    --gms-url the GMS' (review h29)."""
    gms.status, gms.html = 401, True
    with pytest.raises(MeshError) as err:
        datahub.post_proposals(mcps, gms.url, token=token)
    assert str(err.value).endswith(f"domainProperties: HTTP 401 {fix}")
    assert "tok-secret" not in str(err.value)


def test_an_unreachable_or_odd_gms_url_is_one_clear_error(gms: Gms) -> None:
    with pytest.raises(MeshError, match="not an http"):
        datahub.post_proposals([], "ftp://gms")
    port = gms.server_address[1]
    gms.shutdown()
    gms.server_close()
    mcp = datahub.proposals([])  # no products: nothing to send
    assert mcp == []
    with pytest.raises(MeshError, match="unreachable"):
        datahub.post_proposals(
            [
                {
                    "entityType": "domain",
                    "entityUrn": "urn:li:domain:x",
                    "changeType": "UPSERT",
                    "aspectName": "domainProperties",
                    "aspect": {"json": {"name": "x"}},
                }
            ],
            f"http://127.0.0.1:{port}",
            timeout=2,
        )


#: One proposal to send where what is sent does not matter.
ONE_PROPOSAL = {
    "entityType": "domain",
    "entityUrn": "urn:li:domain:x",
    "changeType": "UPSERT",
    "aspectName": "domainProperties",
    "aspect": {"json": {"name": "x"}},
}


def test_a_password_or_token_in_the_gms_url_is_never_repeated(gms: Gms) -> None:
    port = gms.server_address[1]
    gms.shutdown()
    gms.server_close()
    one = ONE_PROPOSAL
    with pytest.raises(MeshError) as err:
        datahub.post_proposals([one], f"http://ingest:hunter2@127.0.0.1:{port}/", timeout=2)
    assert f"GMS at http://<hidden>@127.0.0.1:{port}/ unreachable" in str(err.value)
    assert "hunter2" not in str(err.value)
    with pytest.raises(MeshError) as err:  # a query would swallow the API path (h42)
        datahub.post_proposals([one], f"http://ingest:hunter2@127.0.0.1:{port}/?t=tok9")
    assert "has a query or fragment" in str(err.value)
    assert "hunter2" not in str(err.value)
    assert "tok9" not in str(err.value)


@pytest.mark.parametrize(
    ("token", "said"),
    [
        ("MyS3cretDHtoken\r\nX-Evil: 1", "a blank or a control character"),
        ("MyS3cretDHtokén", "a character that is not ASCII"),
    ],
)
def test_a_token_no_http_header_can_carry_is_refused_without_showing_it(
    token: str, said: str
) -> None:
    """h51: httpx's refusal quoted the header (`Illegal header value b'Bearer MyS3cret...'`,
    said as "unreachable"), and a non-ASCII token came out as a UnicodeEncodeError."""
    one = ONE_PROPOSAL
    with pytest.raises(ConfigurationError) as refused:
        datahub.post_proposals([one], "http://127.0.0.1:9", token=token)
    assert str(refused.value) == (
        f"MESH_DATAHUB_TOKEN holds {said} (not shown), which an HTTP header cannot carry; a "
        "DataHub access token is printable ASCII text"
    )
    assert "S3cret" not in str(refused.value)
