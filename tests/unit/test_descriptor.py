"""Descriptor loading: naming rules, derived addresses, and errors that point at file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh_stream.descriptor import (
    PRODUCT_NAME,
    TOPIC_NAME,
    Classification,
    DataProduct,
    load_descriptor,
    load_descriptors,
    parse_descriptor,
    product_name_problem,
)
from mesh_stream.errors import DescriptorError

VALID = """\
name: orders.order-placed
domain: orders
kind: source-aligned
description: Every order a customer places.
owner:
  team: orders-core
  contact: orders-core@example.com
version: 2
schema: schemas/orders/order-placed.avsc
key_field: order_id
partitions: 6
slos:
  freshness_seconds: 5
  availability: 99.9
classification: internal
tags: [orders, sales]
"""


def test_valid_descriptor_derives_topic_subject_and_dlq() -> None:
    product = parse_descriptor(VALID)
    assert product.topic == "orders.order-placed.v2"
    assert product.value_subject == "orders.order-placed.v2-value"
    assert product.dlq_topic == "orders.order-placed.v2.dlq"
    assert product.schema_file == "schemas/orders/order-placed.avsc"
    assert product.tags == ("orders", "sales")
    assert product.to_document()["schema"] == "schemas/orders/order-placed.avsc"
    assert DataProduct.model_validate(product.to_document()) == product


def test_errors_name_file_line_and_field_path() -> None:
    text = VALID.replace("freshness_seconds: 5", "freshness_seconds: -5").replace(
        "classification: internal", "classification: secret"
    )
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(text, "domains/orders/products/order-placed.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "domains/orders/products/order-placed.yaml:13: slos.freshness_seconds: "
        "Input should be greater than 0",
        "domains/orders/products/order-placed.yaml:15: classification: "
        "Input should be 'public', 'internal', 'confidential' or 'pii'",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("name: orders.order-placed", "name: Orders.OrderPlaced"), "is not `<domain>.<product>`"),
        (("domain: orders", "domain: payments"), "must start with its domain 'payments'"),
        (("tags: [orders, sales]", "inputs: [nodot]"), "input 'nodot' is not a product name"),
        (("kind: source-aligned", "kind: derived"), "kind: Input should be 'source-aligned'"),
        (("partitions: 6", "partitions: 0"), ":11: partitions: Input should be greater than"),
        (
            ("key_field: order_id", "colour: blue"),
            "colour: not a field of a descriptor (its fields: ",
        ),
    ],
)
def test_bad_fields_are_refused(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(DescriptorError, match=None) as caught:
        parse_descriptor(VALID.replace(*change), "d.yaml")
    assert expected in str(caught.value)


def test_missing_field_is_named() -> None:
    text = VALID.replace("owner:\n  team: orders-core\n  contact: orders-core@example.com\n", "")
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(text, "d.yaml")
    assert "d.yaml:1: owner: Field required" in str(caught.value)


def test_invalid_yaml_points_at_the_line() -> None:
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor("name: a.b\nowner: [unclosed\n", "d.yaml")
    assert str(caught.value).startswith("d.yaml:")
    assert "not valid YAML" in str(caught.value)


def test_field_lineage_must_name_product_and_field() -> None:
    good = VALID + "field_lineage:\n  region: [customers.customer-profile:region]\n"
    assert parse_descriptor(good).field_lineage == {
        "region": ("customers.customer-profile:region",)
    }
    with pytest.raises(DescriptorError, match="is not `<product>:<field>`"):
        parse_descriptor(VALID + "field_lineage:\n  region: [customers]\n")


def test_classification_ranks_by_sensitivity() -> None:
    ranks = [c.rank for c in (Classification.PUBLIC, Classification.INTERNAL, Classification.PII)]
    assert ranks == sorted(ranks)
    assert Classification.CONFIDENTIAL.rank < Classification.PII.rank


def test_load_descriptors_reports_every_bad_file_and_misplaced_domain(tmp_path: Path) -> None:
    good = tmp_path / "orders" / "products" / "order-placed.yaml"
    misplaced = tmp_path / "payments" / "products" / "order-placed.yaml"
    broken = tmp_path / "orders" / "products" / "broken.yaml"
    for path, text in ((good, VALID), (misplaced, VALID), (broken, "name: [")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(DescriptorError) as caught:
        load_descriptors(tmp_path)
    message = str(caught.value)
    assert f"{broken}:" in message
    assert f"{misplaced}: domain: 'orders' lives in the folder of domain 'payments'" in message
    assert str(good) not in message
    misplaced.unlink()
    broken.unlink()
    assert [p.name for p in load_descriptors(tmp_path)] == ["orders.order-placed"]


def test_a_path_given_as_a_str_is_read_and_anything_else_is_named(tmp_path: Path) -> None:
    """A str path raised AttributeError from inside the loader (a design audit)."""
    good = tmp_path / "orders" / "products" / "order-placed.yaml"
    good.parent.mkdir(parents=True)
    good.write_text(VALID)
    assert load_descriptor(str(good)).name == "orders.order-placed"
    assert [p.name for p in load_descriptors(str(tmp_path))] == ["orders.order-placed"]
    with pytest.raises(DescriptorError, match=r"^load_descriptor needs a file path .*got int"):
        load_descriptor(3)  # type: ignore[arg-type]


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match=r"missing\.yaml: cannot read descriptor"):
        load_descriptor(tmp_path / "missing.yaml")


INT, NUMBER, STRING = "a whole number", "a number", "text"


@pytest.mark.parametrize(
    ("change", "where", "kind", "given"),
    [
        (("partitions: 6", "partitions: true"), "11: partitions", INT, "the boolean true"),
        (("partitions: 6", "partitions: '6'"), "11: partitions", INT, "the text '6'"),
        (("partitions: 6", "partitions: 6.0"), "11: partitions", INT, "the number 6.0"),
        (("version: 2", "version: yes"), "8: version", INT, "the boolean true"),
        (("availability: 99.9", "availability: '99.9'"), "14: slos.availability", NUMBER,
         "the text '99.9'"),
        (("availability: 99.9", "availability: true"), "14: slos.availability", NUMBER,
         "the boolean true"),
        (("description: Every order", "description: 42 #"), "4: description", STRING,
         "the number 42"),
        (("team: orders-core", "team: 7"), "6: owner.team", STRING, "the number 7"),
        (("tags: [orders, sales]", "tags: [orders, 1]"), "16: tags.1", STRING, "the number 1"),
        (("key_field: order_id", "key_field: false"), "10: key_field", STRING,
         "the boolean false"),
    ],
)  # fmt: skip
def test_scalar_fields_are_strict_types(
    change: tuple[str, str], where: str, kind: str, given: str
) -> None:
    """Said in YAML's words (h49: pydantic's "Input should be a valid string")."""
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(VALID.replace(*change), "d.yaml")
    assert str(caught.value) == f"d.yaml:{where}: must be {kind}, not {given}"


def test_a_mapping_field_given_text_says_it_must_be_a_mapping() -> None:
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(VALID.replace("owner:\n", "owner: core\nx_owner:\n", 1), "d.yaml")
    assert "d.yaml:5: owner: must be a mapping (`key: value` lines), not the text 'core'" in str(
        caught.value
    )


def test_yaml_numbers_stay_ergonomic() -> None:
    text = VALID.replace("availability: 99.9", "availability: 99").replace(
        "freshness_seconds: 5", "freshness_seconds: 2.5"
    )
    product = parse_descriptor(text + "retention:\n  ms: -1\n")
    assert (product.slos.availability, product.slos.freshness_seconds) == (99.0, 2.5)
    assert (product.partitions, product.version, product.retention.ms) == (6, 2, -1)


def test_a_product_name_too_long_for_its_topic_is_named_before_any_file_is_opened(
    tmp_path: Path,
) -> None:
    """A 5,000-character name used to reach open() and fail as "File name too long"."""
    from mesh_stream.descriptor import MAX_PRODUCT_NAME, resolve_product
    from mesh_stream.errors import ConfigurationError

    name = "orders." + "x" * 5_000
    with pytest.raises(ConfigurationError) as caught:
        resolve_product(name, root=tmp_path)
    message = str(caught.value)
    assert message.startswith("product name 'orders.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... ")
    assert f"has 5007 characters; a product name has at most {MAX_PRODUCT_NAME}" in message
    assert len(message) < 300
    longest = "orders." + "x" * (MAX_PRODUCT_NAME - len("orders."))
    assert len(f"{longest}.v9999999") <= 249  # the longest name's topic fits Kafka's limit
    with pytest.raises(DescriptorError, match=r"name: 'orders\.x+'\.\.\. has 241 characters"):
        parse_descriptor(f"name: {longest}x\n", "f.yaml")


@pytest.mark.parametrize(
    "check",
    [
        lambda name: product_name_problem(name) is not None,
        lambda name: PRODUCT_NAME.match(name) is None,
        lambda name: TOPIC_NAME.match(f"{name}.v1") is None,
    ],
    ids=["product_name_problem", "PRODUCT_NAME", "TOPIC_NAME"],
)
def test_a_name_ending_in_a_newline_is_no_name(check: Any) -> None:
    """A regex's ``$`` also matches before a final newline: `inventory.example-event\\n`
    passed lint and reached the registry as the subject `inventory.example-event\\n.v1-value`
    (hostile-input campaign 3)."""
    assert check("orders.order-placed\n")
    assert not check("orders.order-placed")


def test_a_descriptor_whose_name_ends_in_a_newline_is_refused_at_its_line() -> None:
    with pytest.raises(DescriptorError, match=r"f\.yaml:1: name: 'orders\.order-placed\\n'"):
        parse_descriptor('name: "orders.order-placed\\n"\n', "f.yaml")


BIG = """name: orders.big
domain: orders
kind: source-aligned
description: {description}
owner: {{team: t, contact: a@b.co}}
schema: schemas/orders/big.avsc
slos: {{freshness_seconds: 5, availability: 99}}
classification: internal
tags: [{tags}]
"""


def test_a_descriptor_the_registry_would_refuse_as_too_large_is_refused_at_its_file() -> None:
    """`mesh products plan` said "applicable" and `apply` created the topic and registered
    the schema before the registry refused a 2 MB description (HTTP 413; campaign 3)."""
    with pytest.raises(
        DescriptorError, match=r"^f\.yaml:4: description: String should have at most 20000"
    ):
        parse_descriptor(BIG.format(description="x" * 20_001, tags=""), "f.yaml")
    tags = ",".join(f"tag{n}" for n in range(30_000))
    with pytest.raises(
        DescriptorError,
        match=r"^f\.yaml:1: \(a descriptor\): the descriptor takes 349,399 bytes "
        r"as JSON, over the 262,144 a descriptor may take",
    ):
        parse_descriptor(BIG.format(description="ok", tags=tags), "f.yaml")
    assert parse_descriptor(BIG.format(description="x" * 20_000, tags="a"), "f.yaml").name


def test_a_folder_that_does_not_exist_is_said_so_not_read_as_no_products(tmp_path: Path) -> None:
    """h53: ``load_descriptors("/nonexistent")`` returned [], like a project with none."""
    missing = tmp_path / "domians"
    with pytest.raises(DescriptorError, match=r"domians: no such folder; load_descriptors"):
        load_descriptors(missing)
    assert load_descriptors(missing, missing_ok=True) == []
    (tmp_path / "empty").mkdir()
    assert load_descriptors(tmp_path / "empty") == []
