"""Whatever is in the files, `mesh lint` reports violations with a location; it never crashes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh_stream.governance import Severity, lint_repository
from tests.unit.governance.conftest import FIXTURES

SHOP = "domains/shop/products/order-placed.yaml"
SHOP_SCHEMA = "schemas/shop/order-placed.avsc"
GOOD_SHOP: dict[str, Any] = yaml.safe_load((FIXTURES / "good" / SHOP).read_text())

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
lint_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _lint_with(files: dict[str, str]) -> list[Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "mesh"
        shutil.copytree(FIXTURES / "good", root)
        for relative, text in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text, encoding="utf-8")
        return list(lint_repository(root).violations)


@lint_settings
@given(st.text(max_size=200))
def test_any_descriptor_text(text: str) -> None:
    for violation in _lint_with({SHOP: text}):
        assert violation.file is not None
        if violation.file == SHOP:
            assert violation.severity is Severity.ERROR


@lint_settings
@given(st.sampled_from(sorted(GOOD_SHOP)), yaml_values)
def test_any_value_in_a_descriptor_field(key: str, value: Any) -> None:
    document = {**GOOD_SHOP, key: value}
    for violation in _lint_with({SHOP: yaml.safe_dump(document)}):
        assert violation.file is not None
        assert violation.line is not None or violation.policy == "schema-valid"


@lint_settings
@given(st.text(max_size=200) | yaml_values.map(lambda v: yaml.safe_dump(v, default_style='"')))
def test_any_schema_text(text: str) -> None:
    for violation in _lint_with({SHOP_SCHEMA: text}):
        assert violation.file is not None


@lint_settings
@given(st.text(max_size=200) | yaml_values.map(lambda v: yaml.safe_dump({"overrides": v})))
def test_any_domain_policies_text(text: str) -> None:
    for violation in _lint_with({"domains/shop/policies.yaml": text}):
        assert violation.file is not None


def test_a_descriptor_key_given_twice_is_a_violation_at_its_line() -> None:
    """YAML keeps the last of two equal keys, so a second classification would quietly win."""
    text = (FIXTURES / "good" / SHOP).read_text()
    first = text.splitlines().index("classification: internal") + 1
    doubled = text + "classification: public\n"
    violations = _lint_with({SHOP: doubled})
    assert [(v.policy, v.file, v.line) for v in violations][:1] == [
        ("descriptor-valid", SHOP, doubled.count("\n"))
    ]
    assert violations[0].message == (
        f"classification: given twice (first on line {first}); keep one"
    )


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("yes: 1\n", "yes: YAML reads this key as a boolean, not a name"),
        ("~: 1\n", "~: YAML reads this key as null (no value), not a name"),
        ("rules:\n  - when: 1\n    2: x\n", "rules[0].2: YAML reads this key as a number"),
    ],
)
def test_a_key_yaml_reads_as_no_name_is_named_at_its_own_line(extra: str, said: str) -> None:
    """pydantic said "1: Keys should be strings" at the mapping's first line for `yes:`."""
    text = (FIXTURES / "good" / SHOP).read_text()
    changed = text + extra
    (violation,) = _lint_with({SHOP: changed})
    assert (violation.policy, violation.file, violation.line) == (
        "descriptor-valid",
        SHOP,
        changed.count("\n"),
    )
    assert violation.message.startswith(said), violation.message
    assert violation.message.endswith("or fix its spelling"), violation.message


def test_impossible_date_and_absurd_nesting_are_violations() -> None:
    (date,) = _lint_with({SHOP: f"schema: {SHOP_SCHEMA}\nname: 2001-02-30\n"})
    assert (date.policy, date.file, date.message) == (
        "descriptor-valid",
        SHOP,
        "not valid YAML: day is out of range for month",
    )
    nested = _lint_with({SHOP: "[" * 5000})
    assert [(v.policy, v.file) for v in nested] == [
        ("descriptor-valid", SHOP),
        # the unreadable descriptor no longer points at its schema
        ("schema-has-product", SHOP_SCHEMA),
    ]


def test_a_rule_reading_a_field_the_schema_lacks_is_named_at_its_expression() -> None:
    """It passed lint and apply, then refused (or dead-lettered) every record (a campaign);
    a field only tested with has() may be missing."""
    text = (FIXTURES / "good" / SHOP).read_text()
    rules = (
        "rules:\n"
        "  - name: known-customer\n"
        "    expr: \"message.customer_id != '' && has(message.coupon)\"\n"
        "  - name: typo\n"
        '    expr: "size(message.custmer_id) > 0 // message.in_a_comment"\n'
    )
    (violation,) = _lint_with({SHOP: text + rules})
    assert (violation.policy, violation.file) == ("rules-read-schema-fields", SHOP)
    assert violation.line == (text + rules).count("\n")
    assert violation.message == (
        "rule 'typo' reads message.custmer_id, but OrderPlaced has no field 'custmer_id': the "
        "rule fails on every record"
    )


def test_a_rule_selecting_a_nested_field_the_schema_lacks_or_from_a_number_is_named() -> None:
    """A nested path is followed through the schema's records; a field selected from a
    value without fields (a long, a list) fails on every record too (a campaign left it)."""
    text = (FIXTURES / "good" / SHOP).read_text()
    rules = (
        "rules:\n"
        "  - name: lines-known\n"
        '    expr: "message.lines.all(l, l.quantity > 0) && size(message.lines) > 0"\n'
        "  - name: lines-picked\n"
        "    expr: \"message.lines.sku != ''\"\n"
        "  - name: cents-part\n"
        "    expr: \"message.total_cents.amount >= 0 && message.order_id.startsWith('o')\"\n"
    )
    violations = _lint_with({SHOP: text + rules})
    assert [(v.policy, v.file, v.field) for v in violations] == [
        ("rules-read-schema-fields", SHOP, "rules.1.expr"),
        ("rules-read-schema-fields", SHOP, "rules.2.expr"),
    ]
    assert [v.message for v in violations] == [
        "rule 'lines-picked' reads message.lines.sku, but message.lines is an array, without "
        "fields: the rule fails on every record",
        "rule 'cents-part' reads message.total_cents.amount, but message.total_cents is a "
        "long, without fields: the rule fails on every record",
    ]


def test_a_retention_a_compacted_topic_ignores_is_a_warning_at_its_line() -> None:
    """The topic is created without it, yet the catalog showed it (a campaign); -1 (keep
    for ever) is what compaction does anyway and passes."""
    customer = "domains/people/products/customer.yaml"
    text = (FIXTURES / "good" / customer).read_text()
    assert "  ms: -1\n" in text
    (violation,) = _lint_with({customer: text.replace("  ms: -1\n", "  ms: 86400000\n")})
    assert (violation.policy, violation.file, violation.severity.value) == (
        "retention-bounds",
        customer,
        "warning",
    )
    assert violation.line == text.splitlines().index("  ms: -1") + 1
    assert violation.message.startswith(
        "retention.ms 86400000 has no effect with cleanup_policy 'compact'"
    )


def test_a_compact_descriptor_sent_to_the_registry_gets_no_retention_warning() -> None:
    """A review: the document the SDK sends carries the default retention.ms, which the
    YAML never set; the registry's check of it warned to drop a key the file lacks."""
    from mesh_stream.descriptor import DataProduct
    from mesh_stream.governance.policies import RetentionBounds, Review, check_retention

    customer = FIXTURES / "good" / "domains/people/products/customer.yaml"
    document = yaml.safe_load(customer.read_text())
    del document["retention"]["ms"]
    sent = DataProduct.model_validate(DataProduct.model_validate(document).to_document())
    assert "ms" in sent.retention.model_fields_set  # as the registry sees it
    review = Review(product=sent, schema=None, catalog=None)  # type: ignore[arg-type]
    assert list(check_retention(review, RetentionBounds())) == []


def test_a_number_longer_than_python_reads_is_an_error_at_its_line() -> None:
    """A 5,000-digit integer in a schema or a descriptor ended `mesh lint` with Python's
    ValueError (a campaign, h49): it is an error at the number's line instead."""
    long = "9" * 5000
    too_long = "a number of 5000 digits, more than the 4300 Python reads"
    schema = (FIXTURES / "good" / SHOP_SCHEMA).read_text().rstrip()
    assert schema.endswith("}")
    longer_schema = f'{schema[:-1]},\n"x-meta": {long}\n}}\n'
    descriptor = yaml.safe_dump(GOOD_SHOP).replace("partitions: ", f"partitions: {long}\nx: ", 1)
    partitions = descriptor.splitlines().index(f"partitions: {long}") + 1

    def said(files: dict[str, str]) -> set[tuple[str | None, int | None, str]]:
        return {(v.file, v.line, v.message.splitlines()[0]) for v in _lint_with(files)}

    assert (SHOP, partitions, f"not valid YAML: {too_long}") in said({SHOP: descriptor})
    x_meta = len(schema.splitlines()) + 1
    assert (SHOP_SCHEMA, x_meta, f"not valid JSON: {too_long}") in said(
        {SHOP_SCHEMA: longer_schema}
    )
