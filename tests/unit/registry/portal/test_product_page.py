"""The product page over an in-process registry: descriptor, SLOs beside the monitor's figures,
the field table, version diffs, consumer snippets, rules; unknown and hostile names."""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import json
import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.consumer import ProductConsumer
from mesh_stream.contracts import compile_contract
from mesh_stream.descriptor import DataProduct
from mesh_stream.health import Figure, FigureName, ProductHealth, Status
from mesh_stream.registry.portal.product import NOT_OBSERVED, seconds_text
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.product_health import InMemoryHealthFeed
from mesh_stream.settings import MeshSettings
from tests.unit.registry.conftest import ADMIN, TOKENS, descriptor

PRODUCT = "customers.customer-account"
DERIVED = "analytics.customer-stats"
ADDED = "loyalty_tier"

ACCOUNT: dict[str, Any] = {
    "type": "record",
    "name": "CustomerAccount",
    "namespace": "io.example.customers",
    "doc": "A customer's account.",
    "fields": [
        {"name": "customer_id", "type": "string", "doc": "Id of the customer."},
        {"name": "email", "type": "string", "pii": True, "doc": "Where we write to them."},
        {
            "name": "address",
            "doc": "Where they live.",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "street", "type": "string", "pii": True, "doc": "Street, number."},
                    {"name": "postcode", "type": ["null", "string"], "default": None},
                ],
            },
        },
        {
            "name": "orders",
            "doc": "Recent orders.",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "RecentOrder",
                    "fields": [
                        {"name": "order_id", "type": "string", "doc": "Order id."},
                        {
                            "name": "placed_at",
                            "type": {"type": "long", "logicalType": "timestamp-millis"},
                            "doc": "When it was placed.",
                        },
                    ],
                },
            },
        },
        {
            "name": "segment",
            "type": {"type": "enum", "name": "Segment", "symbols": ["NEW", "VIP"]},
            "default": "NEW",
            "doc": "Marketing segment.",
        },
    ],
}
ACCOUNT_V2 = {
    **ACCOUNT,
    "fields": [
        *ACCOUNT["fields"],
        {"name": ADDED, "type": ["null", "string"], "default": None, "doc": "Loyalty tier."},
    ],
}
ALL_PATHS = [
    "customer_id",
    "email",
    "address",
    "address.street",
    "address.postcode",
    "orders",
    "orders.order_id",
    "orders.placed_at",
    "segment",
]
RULES = [
    {
        "name": "email-has-at",
        "expr": "message.email.contains('@')",
        "doc": "An address we can write to.",
        "on_failure": "DLQ",
    }
]
STATS: dict[str, Any] = {
    "type": "record",
    "name": "CustomerStats",
    "doc": "Counts.",
    "fields": [{"name": "customers", "type": "long", "doc": "How many."}],
}


def _register(client: TestClient, document: dict[str, Any], schema: dict[str, Any]) -> None:
    product = DataProduct.model_validate(document)
    contract = compile_contract(product, schema)
    answer = client.post(
        f"/subjects/{product.value_subject}/versions",
        json={
            "schema": json.dumps(schema),
            "metadata": contract.metadata,
            "ruleSet": contract.rule_set,
        },
        auth=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    answer = client.put(f"/products/{product.name}", json=document, auth=ADMIN)
    assert answer.status_code == 200, answer.text


def _account() -> dict[str, Any]:
    return descriptor(
        PRODUCT,
        description="Every customer's account, <b>with</b> contact details.",
        owner={"team": "identity", "contact": "identity@example.com"},
        classification="pii",
        tags=["customers", "accounts"],
        key_field="customer_id",
        partitions=6,
        retention={"ms": -1, "cleanup_policy": "compact"},
        slos={
            "freshness_seconds": 60,
            "availability": 99.5,
            "min_records_per_minute": 10,
            "max_dlq_ratio": 0.01,
            "max_lag_seconds": 30,
        },
        rules=RULES,
    )


def _stats() -> dict[str, Any]:
    return descriptor(
        DERIVED,
        kind="aggregate",
        description="Customer counts.",
        owner={"team": "bi", "contact": "#bi-help on chat"},
        inputs=[PRODUCT],
        slos={"freshness_seconds": 90, "availability": 99},
    )


@pytest.fixture
def feed() -> InMemoryHealthFeed:
    return InMemoryHealthFeed()


@pytest.fixture
def client(feed: InMemoryHealthFeed) -> Iterator[TestClient]:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), health_feed=feed)
    with TestClient(app, raise_server_exceptions=False) as found:
        _register(found, _account(), ACCOUNT)
        _register(found, _stats(), STATS)
        yield found


@pytest.fixture(scope="module")
def two_versions() -> Iterator[TestClient]:
    """A registry only read from (no health): the account product with two versions."""
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))
    with TestClient(app, raise_server_exceptions=False) as found:
        _register(found, _account(), ACCOUNT)
        _register(found, _account(), ACCOUNT_V2)
        yield found


def _page(client: TestClient, name: str = PRODUCT) -> str:
    answer = client.get(f"/ui/products/{name}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


def _section(page: str, section: str) -> str:
    found = re.search(rf'<section id="{section}".*?</section>', page, re.S)
    assert found, f"no section {section}"
    return found.group(0)


def _text(fragment: str) -> str:
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))
    return re.sub(r" +", " ", text.replace(" ,", ","))


def _field_rows(page: str) -> dict[str, str]:
    schema = _section(page, "schema")
    return dict(re.findall(r'<tr class="field[^"]*" data-field="([^"]+)">(.*?)</tr>', schema, re.S))


# -- descriptor --------------------------------------------------------------------------


def test_the_descriptor_is_shown(client: TestClient) -> None:
    page = _page(client)
    overview = _section(page, "overview")
    text = _text(overview)
    assert "identity" in text
    assert '<a href="mailto:identity@example.com">identity@example.com</a>' in overview
    assert "source-aligned" in text
    assert '<span class="badge pii">pii</span>' in overview
    assert '<a class="chip" href="/ui/products?tag=accounts">accounts</a>' in overview
    assert f'<a href="/ui/products/{DERIVED}">{DERIVED}</a>' in overview  # downstream
    assert "customers.customer-account.v1, 6 partitions, retention forever" in text
    # the description is data: escaped, never markup
    assert "&lt;b&gt;with&lt;/b&gt;" in page
    assert "<b>with</b>" not in page


def test_inputs_link_and_a_channel_contact_is_no_mailto(client: TestClient) -> None:
    overview = _section(_page(client, DERIVED), "overview")
    assert f'<a href="/ui/products/{PRODUCT}">{PRODUCT}</a>' in overview
    assert "#bi-help on chat" in overview
    assert "mailto:" not in overview


def test_registered_consumer_groups_are_listed(client: TestClient) -> None:
    assert "No consumer group is registered" in _page(client)
    answer = client.put(
        f"/products/{PRODUCT}/consumers/billing.invoices",
        json={"reads": ["customer_id", "email"], "contact": "billing@example.com"},
        auth=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    overview = _section(_page(client), "overview")
    text = _text(overview)
    assert "billing.invoices" in text
    assert "customer_id, email" in text
    assert "billing@example.com" in text


def test_topic_section(client: TestClient) -> None:
    text = _text(_section(_page(client), "topic"))
    for expected in (
        "Topic customers.customer-account.v1",
        "Partitions 6",
        "Replication factor the cluster's default",
        "Retention forever",
        "Cleanup policy compact",
        "Key field customer_id",
        "Value subject customers.customer-account.v1-value",
        "Dead-letter topic customers.customer-account.v1.dlq",
    ):
        assert expected in text


# -- schema ------------------------------------------------------------------------------


def test_every_field_of_a_nested_schema_appears(client: TestClient) -> None:
    rows = _field_rows(_page(client))
    assert list(rows) == ALL_PATHS
    assert "Street, number." in rows["address.street"]
    assert "<code>null | string</code>" in rows["address.postcode"]
    assert "<code>null</code>" in rows["address.postcode"]  # the default
    assert "<code>array&lt;RecentOrder&gt;</code>" in rows["orders"]
    assert "timestamp-millis" in rows["orders.placed_at"]
    assert "enum Segment {NEW, VIP}" in rows["segment"]
    assert "<code>&#34;NEW&#34;</code>" in rows["segment"]


def test_pii_flags(client: TestClient) -> None:
    rows = _field_rows(_page(client))
    flagged = [path for path, row in rows.items() if '<span class="pii-flag">PII</span>' in row]
    assert flagged == ["email", "address.street"]


def test_no_schema_fields_for_a_product_whose_versions_are_gone(client: TestClient) -> None:
    subject = "analytics.customer-stats.v1-value"
    assert client.delete(f"/subjects/{subject}", auth=ADMIN).status_code == 200
    schema = _section(_page(client, DERIVED), "schema")
    assert "No schema is registered under" in schema
    assert "data-field" not in schema


# -- versions and diff ---------------------------------------------------------------------


def _second_version(client: TestClient) -> None:
    _register(client, _account(), ACCOUNT_V2)


def test_versions_and_the_compatibility_level(client: TestClient) -> None:
    _second_version(client)
    versions = _section(_page(client), "versions")
    text = _text(versions)
    assert re.search(r"<th scope=\"row\">1</th><td>\d+</td><td>9</td><td>1</td>", versions)
    assert re.search(r"<th scope=\"row\">2</th><td>\d+</td><td>10</td><td>1</td>", versions)
    assert "Compatibility level BACKWARD (the registry's global level)" in text
    assert "FULL_TRANSITIVE" in text  # a product reads it: consumer protection
    assert client.put(
        f"/config/{PRODUCT}.v1-value", json={"compatibility": "FULL"}, auth=ADMIN
    ).is_success
    assert "Compatibility level FULL (set on the subject)" in _text(
        _section(_page(client), "versions")
    )
    # the diff form offers both versions, the newest two chosen
    assert '<option value="1" selected>1</option>' in versions
    assert '<option value="2" selected>2</option>' in versions


def test_two_versions_diff_shows_the_added_field(client: TestClient) -> None:
    _second_version(client)
    answer = client.get(
        f"/ui/products/{PRODUCT}/diff",
        params={"from": "1", "to": "2"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    fragment = answer.text
    assert "<html" not in fragment  # a fragment for htmx
    added = re.search(r'<table class="diff-added">.*?</table>', fragment, re.S)
    assert added
    assert re.findall(r'data-field="([^"]+)"', added.group(0)) == [ADDED]
    assert "Loyalty tier." in added.group(0)
    assert "diff-removed" not in fragment
    assert "diff-changed" not in fragment
    raw = [
        html.unescape(line)
        for line in re.findall(r'<span class="diff-line add">(.*?)</span>', fragment)
    ]
    assert any(f'"name": "{ADDED}"' in line for line in raw)


def test_the_diff_backwards_shows_a_removed_field_and_without_htmx_a_whole_page(
    client: TestClient,
) -> None:
    _second_version(client)
    answer = client.get(f"/ui/products/{PRODUCT}/diff?from=2&to=1")
    assert answer.status_code == 200
    page = answer.text
    assert "<html" in page
    assert f'<tr class="diff-del" data-field="{ADDED}">' in page
    assert '<option value="2" selected>2</option>' in _section(page, "versions")
    assert list(_field_rows(page)) == [*ALL_PATHS, ADDED]  # the rest of the page is there


def test_a_history_restore_gets_the_whole_page(two_versions: TestClient) -> None:
    """htmx pushes the diff's URL; going back to it asks for the whole page again."""
    answer = two_versions.get(
        f"/ui/products/{PRODUCT}/diff?from=1&to=2",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert answer.status_code == 200
    assert "<html" in answer.text
    assert f'data-field="{ADDED}"' in answer.text


def test_a_version_with_itself_has_no_differences(client: TestClient) -> None:
    _second_version(client)
    fragment = client.get(
        f"/ui/products/{PRODUCT}/diff?from=2&to=2", headers={"HX-Request": "true"}
    ).text
    assert "No field was added, removed or changed." in fragment
    assert "schema JSON is the same" in fragment


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Choose a &#39;from&#39; version (one of 1, 2)."),
        ("from=1", "Choose a &#39;to&#39; version"),
        (
            "from=abc&to=2",
            "&#39;from&#39; must be a version number (one of 1, 2), not &#39;abc&#39;",
        ),
        ("from=7&to=2", "Version 7 (&#39;from&#39;) is not a live version; choose one of 1, 2."),
        ("from=0&to=-1", "&#39;to&#39; must be a version number"),
        ("from=1%20OR%201=1&to=2", "not &#39;1 OR 1=1&#39;"),
        ("from=%D9%A1&to=2", "must be a version number"),  # an Arabic-Indic digit
        ("from=" + "9" * 5000 + "&to=2", "must be a version number"),
        ("from=%3Cscript%3Ealert(1)%3C/script%3E&to=1", "not &#39;&lt;script&gt;alert(1)"),
    ],
)
def test_bad_diff_parameters_are_a_clear_message(
    two_versions: TestClient, query: str, message: str
) -> None:
    client = two_versions
    htmx = client.get(f"/ui/products/{PRODUCT}/diff?{query}", headers={"HX-Request": "true"})
    assert htmx.status_code == 200  # htmx swaps only successes: the message must show
    assert '<p class="error" role="alert">' in htmx.text
    assert message in htmx.text
    assert "<script>" not in htmx.text
    page = client.get(f"/ui/products/{PRODUCT}/diff?{query}")
    assert page.status_code == 400
    assert message in page.text
    assert "<html" in page.text


def test_one_version_has_nothing_to_compare(client: TestClient) -> None:
    page = _page(client)
    assert 'class="diff-form"' not in page
    fragment = client.get(
        f"/ui/products/{PRODUCT}/diff?from=1&to=1", headers={"HX-Request": "true"}
    ).text
    assert "Only one version is registered" in fragment


# -- SLOs and health ---------------------------------------------------------------------


def _health(at_ms: int, freshness: float, volume: float, **extra: Any) -> ProductHealth:
    figures = [
        Figure(
            name=FigureName.FRESHNESS_SECONDS,
            value=freshness,
            slo=60.0,
            status=Status.OK,
            reason=f"newest record {freshness:.1f} s old",
        ),
        Figure(
            name=FigureName.FRESHNESS_SECONDS,
            value=1.0,
            status=Status.OK,
            reason="partition",
            subject="partition 0",
        ),
        Figure(
            name=FigureName.RECORDS_PER_MINUTE,
            value=volume,
            slo=10.0,
            status=Status.OK,
            reason=f"{volume:g} records in the last minute",
        ),
        Figure(
            name=FigureName.DLQ_RATIO,
            value=0.02,
            slo=0.01,
            status=Status.BREACHED,
            reason="2 dead letters / 100 records",
        ),
        Figure(
            name=FigureName.LAG_SECONDS,
            value=4.0,
            slo=30.0,
            status=Status.OK,
            reason="oldest unconsumed record 4.0 s old",
            subject="billing.invoices",
        ),
    ]
    return ProductHealth(
        product=PRODUCT,
        measured_at_ms=at_ms,
        status=Status.BREACHED,
        reason="dlq_ratio 0.02 over its SLO 0.01",
        since_ms=at_ms - 60_000,
        figures=tuple(figures),
        monitor="unit-test",
        **extra,
    )


def _slo_rows(page: str) -> dict[str, list[str]]:
    slos = _section(page, "slos")
    body = re.search(r'<table class="slo-table">.*?</table>', slos, re.S)
    assert body
    rows = re.findall(r"<tr>\s*(<th scope=\"row\">.*?)</tr>", body.group(0), re.S)
    found = {}
    for row in rows:
        cells = [_text(c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        found[cells[0]] = cells[1:]
    return found


def test_slos_without_monitor_data_are_not_observed_yet(client: TestClient) -> None:
    page = _page(client)
    rows = _slo_rows(page)
    assert list(rows) == [
        "Freshness",
        "Availability",
        "Volume",
        "Dead-letter ratio",
        "Consumer lag",
    ]
    assert rows["Freshness"][:2] == ["≤ 60 s", NOT_OBSERVED]
    assert rows["Volume"][:2] == ["≥ 10 records / min", NOT_OBSERVED]
    assert rows["Availability"][1] == "not measured by the monitor"
    assert "Not observed yet" in _section(page, "slos")
    assert "<svg" not in page  # no history: no chart


def test_slos_beside_the_monitors_figures(client: TestClient, feed: InMemoryHealthFeed) -> None:
    now = int(time.time() * 1000)
    feed.push(_health(now - 5_000, 12.34, 42))
    page = _page(client)
    rows = _slo_rows(page)
    assert rows["Freshness"] == ["≤ 60 s", "12.3 s", "ok", "newest record 12.3 s old"]
    assert rows["Volume"][1:3] == ["42 / min", "ok"]
    assert rows["Dead-letter ratio"][:3] == ["≤ 1 %", "2 %", "breached"]
    assert rows["Consumer lag (billing.invoices)"][:3] == ["≤ 30 s", "4.0 s", "ok"]
    summary = _text(_section(page, "slos"))
    assert "breached dlq_ratio 0.02 over its SLO 0.01" in summary
    assert '<span class="badge breached" title="health">health: breached</span>' in page


def test_a_stale_measurement_is_no_data(client: TestClient, feed: InMemoryHealthFeed) -> None:
    feed.push(_health(int(time.time() * 1000) - 20 * 60_000, 12.34, 42))
    rows = _slo_rows(_page(client))
    assert rows["Freshness"][1:3] == ["12.3 s (last measured, now stale)", "no data"]


def test_end_to_end_latency_for_a_derived_product(client: TestClient) -> None:
    rows = _slo_rows(_page(client, DERIVED))
    assert list(rows) == ["Freshness", "End-to-end latency", "Availability"]
    assert rows["End-to-end latency"][:2] == ["≤ 90 s", NOT_OBSERVED]


def test_history_is_drawn_as_inline_svg_with_a_text_alternative(
    client: TestClient, feed: InMemoryHealthFeed
) -> None:
    now = int(time.time() * 1000)
    for step in range(12):
        feed.push(_health(now - (11 - step) * 600_000, 5.0 + step, 100.0 + step * 10))
    page = _page(client)
    slos = _section(page, "slos")
    charts = re.findall(r'<svg class="chart" id="chart-(\w+)".*?</svg>', slos, re.S)
    assert charts == ["freshness", "volume"]
    freshness = re.search(r'<svg class="chart" id="chart-freshness".*?</svg>', slos, re.S)
    assert freshness
    svg = freshness.group(0)
    assert 'role="img"' in svg
    assert "<title id=" in svg
    assert "<desc id=" in svg
    (points,) = re.findall(r'<polyline class="chart-line" points="([^"]+)"', svg)
    assert len(points.split()) == 12
    assert 'class="chart-bound"' in svg  # the SLO bound, 60 s
    assert "lowest 5.0 s, highest 16.0 s, latest 16.0 s; SLO bound 60.0 s" in slos
    table = re.search(r'<table class="chart-table">.*?</table>', slos, re.S)
    assert table
    assert table.group(0).count("<tr>") == 13  # a header and a row per measurement


# -- consuming it ------------------------------------------------------------------------


def _snippets(page: str) -> dict[str, str]:
    found = re.findall(r'<code id="(snippet-[\w-]+)"[^>]*>(.*?)</code>', page, re.S)
    return {key: html.unescape(code) for key, code in found}


def _check_imports(tree: ast.Module) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.name] = getattr(module, alias.name)
    return names


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                found.append(node)
    return found


def _keywords_fit(call: ast.Call, target: Any) -> None:
    parameters = inspect.signature(target).parameters
    for keyword in call.keywords:
        assert keyword.arg in parameters, f"{keyword.arg} is not a parameter of {target}"


def test_copy_buttons_for_each_snippet(client: TestClient) -> None:
    page = _page(client)
    snippets = _snippets(page)
    assert list(snippets) == ["snippet-sdk", "snippet-confluent", "snippet-tail"]
    for key in snippets:
        assert f'data-copy="#{key}"' in page


def test_the_sdk_snippet_is_current_code(client: TestClient) -> None:
    code = _snippets(_page(client))["snippet-sdk"]
    tree = ast.parse(compile(code, "snippet-sdk", "exec", ast.PyCF_ONLY_AST))
    names = _check_imports(tree)
    assert names["ProductConsumer"] is ProductConsumer
    (consumer,) = _calls(tree, "ProductConsumer")
    _keywords_fit(consumer, ProductConsumer)
    assert ast.literal_eval(consumer.args[0]) == [PRODUCT]
    group = next(k for k in consumer.keywords if k.arg == "group_id")
    assert ast.literal_eval(group.value) == "my-domain.customers-customer-account-reader"
    (settings,) = _calls(tree, "MeshSettings")
    _keywords_fit(settings, MeshSettings)
    assert ast.literal_eval(settings.keywords[0].value) == "http://testserver"
    (consume,) = _calls(tree, "consume")
    _keywords_fit(consume, ProductConsumer.consume)
    for builder in _calls(tree, "from_settings"):
        assert isinstance(builder.func, ast.Attribute)
        assert isinstance(builder.func.value, ast.Name)
        owner = names[builder.func.value.id]
        assert callable(owner.from_settings)


def test_the_confluent_snippet_is_current_code(client: TestClient) -> None:
    code = _snippets(_page(client))["snippet-confluent"]
    tree = ast.parse(compile(code, "snippet-confluent", "exec", ast.PyCF_ONLY_AST))
    names = _check_imports(tree)
    (deserializer,) = _calls(tree, "AvroDeserializer")
    _keywords_fit(deserializer, names["AvroDeserializer"])
    (registry,) = _calls(tree, "SchemaRegistryClient")
    config = ast.literal_eval(registry.args[0])
    assert config == {"url": "http://testserver"}
    names["SchemaRegistryClient"](config)  # confluent-kafka accepts the config
    (consumer,) = _calls(tree, "Consumer")
    settings = ast.literal_eval(consumer.args[0])
    assert settings["group.id"] == "my-domain.customers-customer-account-reader"
    (subscribe,) = _calls(tree, "subscribe")
    assert ast.literal_eval(subscribe.args[0]) == [f"{PRODUCT}.v1"]
    names["Consumer"]({**settings, "bootstrap.servers": "127.0.0.1:1"}).close()


def test_the_tail_snippet_names_the_product_and_the_registry(client: TestClient) -> None:
    code = _snippets(_page(client))["snippet-tail"]
    assert code == (
        f"MESH_REGISTRY_URL=http://testserver mesh tail {PRODUCT} --from-beginning --max 10"
    )


def test_snippets_name_the_public_url_whatever_host_the_page_was_asked_with() -> None:
    """The snippets took the registry's address from the Host header (h54): behind a proxy,
    or with a forged Host, readers copied another address than the registry's own. With
    MESH_REGISTRY_PUBLIC_URL they name that; an instance's advertised URL (its own address,
    for its peers) is never given to readers."""
    store = InMemoryStore()
    store.advertised_url = "http://registry-1.internal:8081"  # type: ignore[attr-defined]
    app = create_app(
        store, credentials=Credentials(TOKENS), public_url="https://registry.example:8443/"
    )
    with TestClient(app, raise_server_exceptions=False) as found:
        _register(found, _account(), ACCOUNT)
        answer = found.get(f"/ui/products/{PRODUCT}", headers={"host": "evil.example"})
        assert answer.status_code == 200, answer.text
        code = _snippets(answer.text)["snippet-tail"]
    assert code == (
        f"MESH_REGISTRY_URL=https://registry.example:8443 mesh tail {PRODUCT} --from-beginning "
        "--max 10"
    )
    assert "evil.example" not in answer.text
    assert "registry-1.internal" not in answer.text
    without = create_app(store, credentials=Credentials(TOKENS))
    with TestClient(without, raise_server_exceptions=False) as found:
        code = _snippets(_page(found))["snippet-tail"]
    assert code.startswith("MESH_REGISTRY_URL=http://testserver mesh tail")


def test_a_signed_in_domain_gets_its_group_prefix_and_read_auth_a_credential_hint(
    feed: InMemoryHealthFeed,
) -> None:
    app = create_app(
        InMemoryStore(), credentials=Credentials(TOKENS), health_feed=feed, read_requires_auth=True
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        _register(client, _account(), ACCOUNT)
        answer = client.get(f"/ui/products/{PRODUCT}", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=")
        page = client.get(
            f"/ui/products/{PRODUCT}", headers={"Authorization": f"Bearer {TOKENS['orders']}"}
        ).text
    snippets = _snippets(page)
    assert 'group_id="orders.customers-customer-account-reader"' in snippets["snippet-sdk"]
    assert "MESH_REGISTRY_TOKEN" in snippets["snippet-sdk"]
    assert '"basic.auth.user.info": "<domain>:<token>"' in snippets["snippet-confluent"]
    assert TOKENS["orders"] not in page  # never the viewer's secret
    compile(snippets["snippet-confluent"], "snippet", "exec")


# -- rules -------------------------------------------------------------------------------


def test_rules_and_the_registered_contract(client: TestClient) -> None:
    rules = _section(_page(client), "rules")
    text = _text(rules)
    assert "email-has-at message.email.contains('@') DLQ An address we can write to." in text
    assert "ruleSet.domainRules" in text
    assert "email-has-at CONDITION WRITE CEL message.email.contains('@') DLQ" in text
    tags = re.search(r'<table class="metadata-tags">.*?</table>', rules, re.S)
    assert tags
    assert "io.example.customers.CustomerAccount.email" in tags.group(0)
    assert "PII" in tags.group(0)


def test_no_rules_says_so(client: TestClient) -> None:
    text = _text(_section(_page(client, DERIVED), "rules"))
    assert "ruleSet" not in text
    assert "email-has-at" not in text


# -- the page as a whole -------------------------------------------------------------------


def test_the_page_keeps_to_the_content_security_policy(
    client: TestClient, feed: InMemoryHealthFeed
) -> None:
    feed.push(_health(int(time.time() * 1000), 3.0, 50))
    feed.push(_health(int(time.time() * 1000) - 600_000, 4.0, 60))
    _second_version(client)
    for url in (f"/ui/products/{PRODUCT}", f"/ui/products/{PRODUCT}/diff?from=1&to=2"):
        answer = client.get(url)
        page = answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert not re.search(r"\sstyle=", page), "inline style attributes are refused by the CSP"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline scripts are refused"
        assert not re.search(r"\son[a-z]+=", page), "event handler attributes are refused"
        assert "<svg" in page
    assert client.get(f"/ui/products/{PRODUCT}/diff?from=1&to=2").status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "nope.missing",
        "orders",
        "<script>alert(1)<script>",
        '"><img src=x onerror=alert(1)>',
        "Orders.Order-Placed",
        "ünïcødé.prödüct",
        "\u202egnp.exe",
        "a" * 2000,
        "orders.order-placed' OR '1'='1",
        "%00",
        "orders.order-placed%0A",
    ],
)
def test_unknown_and_hostile_names_get_a_friendly_404_page(
    two_versions: TestClient, name: str
) -> None:
    client = two_versions
    for path in (f"/ui/products/{name}", f"/ui/products/{name}/diff?from=1&to=2"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        page = answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "<h1>Product not found</h1>" in page
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "Search the products for" in page
        assert len(page) < 20_000  # a 2,000-character name is not repeated whole


def test_what_never_reaches_the_page_is_still_no_500(client: TestClient) -> None:
    """A name with a slash is no product page (the portal's page-not-found answers it), and
    text that is not UTF-8 is refused by the registry's edge before any route: both answer
    with a reason, never a traceback."""
    answer = client.get("/ui/products/<script>alert(1)</script>")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in answer.text
    answer = client.get("/ui/products/%ED%A0%80.x")
    assert answer.status_code == 422
    assert "not valid UTF-8" in answer.text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (7.25, "7.2 s"),
        (600, "10.0 min"),
        (3 * 86_400, "72.0 h"),
        (1e308, "2.78e+304 h"),  # an absurd figure, not 305 digits (h54)
    ],
)
def test_seconds_are_shown_in_a_unit_read_at_a_glance(seconds: float, shown: str) -> None:
    assert seconds_text(seconds) == shown
