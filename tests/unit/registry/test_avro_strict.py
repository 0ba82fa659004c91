# ruff: noqa: E501  (the case table reads best one case per line)
"""Avro schemas are validated as the specification says: names, symbols, aliases, fixed
sizes, defaults against their types, a union's default against its first branch, strings
UTF-8 can encode, and the cost limits. Every refusal names the field path; the registry
answers each with 422 / 42201 and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.errors import InvalidSchemaError, SchemaError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service import InMemoryStore
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.schema.avro import normalize, parse_schema
from mesh_stream.schema.spec import SchemaLimits
from tests.unit.registry.conftest import ADMIN, make_client

REPO = Path(__file__).resolve().parents[3]


def rec(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(type_: Any, **extra: Any) -> dict[str, Any]:
    return rec({"name": "f", "type": type_, **extra})


ENUM = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
FIXED = {"type": "fixed", "name": "F", "size": 2}
ITEM = rec({"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}, name="Item")

ZERO = {"type": "fixed", "name": "Z", "size": 0}
# x.Z (4 bytes) is what `Z` means inside x.R, though o.Z (0 bytes) is defined first
ITEMS_OF_X_Z = {
    "type": "record",
    "name": "x.R",
    "fields": [{"name": "w", "type": {**ZERO, "size": 4}}, {"name": "z", "type": "Z"}],
}

VALID: list[tuple[str, Any]] = [
    ("primitive", "string"),
    (
        "array of items named in another namespace",
        rec(
            {"name": "zz", "type": ZERO},
            {"name": "a", "type": {"type": "array", "items": ITEMS_OF_X_Z}},
            namespace="o",
        ),
    ),
    (
        "array of records holding an array of ints",
        field(
            {
                "type": "array",
                "items": rec({"name": "x", "type": {"type": "array", "items": "int"}}, name="Q"),
            }
        ),
    ),
    ("names with underscores", rec({"name": "_a1", "type": "int"}, name="_R")),
    ("namespace", rec({"name": "a", "type": "int"}, namespace="orders.v1")),
    ("full name", rec({"name": "a", "type": "int"}, name="orders.v1.R")),
    ("empty namespace", rec({"name": "a", "type": "int"}, namespace="")),
    ("int default range", field("int", default=2**31 - 1)),
    ("long default range", field("long", default=-(2**63))),
    ("float default int", field("float", default=1)),
    ("double default", field("double", default=1.5)),
    ("bytes default", field("bytes", default="\u00ff\u0000")),
    ("fixed default", field(FIXED, default="ab")),
    ("enum default", field(ENUM, default="B")),
    ("enum own default", field({**ENUM, "default": "A"})),
    ("union null first", field(["null", "string"], default=None)),
    ("union string first", field(["string", "null"], default="x")),
    ("array default", field({"type": "array", "items": ITEM}, default=[{"sku": "a", "qty": 1}])),
    ("map default", field({"type": "map", "values": "long"}, default={"a": 2**40})),
    (
        "record default via reference",
        rec(
            {"name": "a", "type": ITEM},
            {"name": "b", "type": "Item", "default": {"sku": "s", "qty": 2}},
        ),
    ),
    (
        "record default missing field with default",
        field(rec({"name": "a", "type": "int", "default": 1}, name="S"), default={}),
    ),
    ("aliases", rec({"name": "a", "type": "int", "aliases": ["old_a"]}, aliases=["x.OldR"])),
    ("fixed size 0", field({"type": "fixed", "name": "Z", "size": 0})),
    ("recursive record", rec({"name": "next", "type": ["null", "R"], "default": None})),
    ("recursive through an array", rec({"name": "kids", "type": {"type": "array", "items": "R"}})),
    ("recursive through a map", rec({"name": "kids", "type": {"type": "map", "values": "R"}})),
    ("recursive through a union", rec({"name": "next", "type": ["R", "string"]})),
    (
        "records needing each other through a null",
        rec({"name": "b", "type": rec({"name": "r", "type": ["null", "R"]}, name="B")}),
    ),
    ("logical type", field({"type": "int", "logicalType": "date"}, default=0)),
    ("custom property", field("string", **{"x-pii": True})),
    ("decimal", field({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2})),
    (
        "fixed decimal at its most",
        field(
            {"type": "fixed", "name": "D", "size": 16, "logicalType": "decimal", "precision": 38}
        ),
    ),
]

# (case, schema, exact message after "invalid Avro schema: ")
INVALID: list[tuple[str, Any, str]] = [
    ("field name digit", rec({"name": "1abc", "type": "int"}), 'R: field 1: name "1abc" is not a valid Avro name (a letter or `_`, then letters, digits or `_`)'),
    ("field name dash", rec({"name": "a-b", "type": "int"}), 'R: field 1: name "a-b" is not a valid Avro name (a letter or `_`, then letters, digits or `_`)'),
    ("record name", rec(name="1R"), '(schema): name "1R" is not a valid Avro name (a letter or `_`, then letters, digits or `_`)'),
    ("namespace empty part", rec(namespace="a..b"), '(schema): namespace "a..b" is not dot-separated names ([A-Za-z_][A-Za-z0-9_]* each)'),
    ("namespace bad part", rec(name="x.1y.R"), '(schema): namespace "x.1y" is not dot-separated names ([A-Za-z_][A-Za-z0-9_]* each)'),
    ("primitive as name", rec(name="int"), "(schema): 'int' is a primitive type and cannot name a type"),
    ("name twice", rec({"name": "a", "type": rec(name="R")}), "R.a: the name 'R' is already defined in this schema"),
    ("symbols not a list", field({"type": "enum", "name": "E", "symbols": "A"}), 'R.f: enum symbols "A" must be a list of names'),
    ("symbol not a name", field({"type": "enum", "name": "E", "symbols": ["A", "b-c"]}), 'R.f: enum symbol "b-c" is not a valid Avro name (a letter or `_`, then letters, digits or `_`)'),
    ("symbol twice", field({"type": "enum", "name": "E", "symbols": ["A", "A"]}), "R.f: enum symbol 'A' appears twice"),
    ("enum default unknown", field({**ENUM, "default": "C"}), 'R.f: enum default "C" is not one of its symbols'),
    ("int default string", field("int", default="x"), 'R.f: default "x" is not an int (32-bit integer, -2147483648..2147483647)'),
    ("int default null", field("int", default=None), "R.f: default null is not an int (32-bit integer, -2147483648..2147483647)"),
    ("int default 2^40", field("int", default=2**40), "R.f: default 1099511627776 is not an int (32-bit integer, -2147483648..2147483647)"),
    ("int default bool", field("int", default=True), "R.f: default true is not an int (32-bit integer, -2147483648..2147483647)"),
    ("int default float", field("int", default=1.5), "R.f: default 1.5 is not an int (32-bit integer, -2147483648..2147483647)"),
    ("long default 2^63", field("long", default=2**63), "R.f: default 9223372036854775808 is not a long (64-bit integer, -9223372036854775808..9223372036854775807)"),
    ("boolean default 1", field("boolean", default=1), "R.f: default 1 is not a boolean"),
    ("float default string", field("float", default="1.0"), 'R.f: default "1.0" is not a float (a JSON number)'),
    ("string default number", field("string", default=1), "R.f: default 1 is not a string"),
    ("null default 0", field("null", default=0), "R.f: default 0 is not null"),
    ("bytes default number", field("bytes", default=1), "R.f: default 1 is not bytes (a string of code points U+0000..U+00FF)"),
    ("bytes default wide char", field("bytes", default="\u0100"), 'R.f: default "\\u0100" is not bytes (a string of code points U+0000..U+00FF)'),
    ("fixed default size", field(FIXED, default="abc"), 'R.f: default "abc" is not a fixed of 2 bytes (a string of 2 code points U+0000..U+00FF)'),
    ("enum default via field", field(ENUM, default="C"), 'R.f: default "C" is not one of the enum symbols ["A", "B"]'),
    ("union default second branch", field(["null", "string"], default="x"), "R.f: default \"x\" does not match the union's first branch (null); a union's default must be of its first type, so list that type first"),
    ("array default object", field({"type": "array", "items": "int"}, default={}), "R.f: default {} is not an array"),
    ("array default item", field({"type": "array", "items": "int"}, default=[1, "x"]), 'R.f: default[1] "x" is not an int (32-bit integer, -2147483648..2147483647)'),
    ("map default value", field({"type": "map", "values": "int"}, default={"a": "x"}), 'R.f: default["a"] "x" is not an int (32-bit integer, -2147483648..2147483647)'),
    ("record default field", field(ITEM, default={"sku": "s", "qty": "2"}), 'R.f: default.qty "2" is not an int (32-bit integer, -2147483648..2147483647)'),
    ("record default missing", field(ITEM, default={"sku": "s"}), "R.f: default lacks field 'qty', which has no default of its own"),
    ("nested field default", rec({"name": "items", "type": {"type": "array", "items": rec({"name": "sku", "type": "int", "default": "x"}, name="Line")}}, name="OrderPlaced", namespace="orders"), 'orders.OrderPlaced.items[].sku: default "x" is not an int (32-bit integer, -2147483648..2147483647)'),
    ("field aliases string", field("int", aliases="x"), 'R.f: aliases "x" must be a list of names'),
    ("record aliases string", rec(aliases="x"), 'R: aliases "x" must be a list of names'),
    ("alias not a name", field("int", aliases=["a-b"]), 'R.f: alias "a-b": "a-b" is not a valid Avro name (a letter or `_`, then letters, digits or `_`)'),
    ("fixed size negative", field({"type": "fixed", "name": "F", "size": -1}), "R.f: fixed size -1 must be an integer from 0 to 2147483647 (Java's Avro, Kafka Connect's, reads it as an int)"),
    ("fixed size string", field({"type": "fixed", "name": "F", "size": "4"}), """R.f: fixed size "4" must be an integer from 0 to 2147483647 (Java's Avro, Kafka Connect's, reads it as an int)"""),
    ("fixed size over an int", field({"type": "fixed", "name": "F", "size": 2**31}), "R.f: fixed size 2147483648 must be an integer from 0 to 2147483647 (Java's Avro, Kafka Connect's, reads it as an int)"),
    ("empty union", field([]), "R.f: a union needs at least one branch (`[]` holds no value)"),
    ("wrapped type", field({"type": {"type": "int"}}), 'R.f: `type` holds a type ({"type": "int"}), not a type name; write that type in place of the object around it'),
    ("duplicate field", rec({"name": "a", "type": "int"}, {"name": "a", "type": "long"}), "R.a: the record has two fields named 'a'"),
    ("unknown type", field("nope"), 'R.f: unknown type "nope" (neither a primitive type nor a named type defined earlier in the schema)'),
    ("union in union", field(["null", ["int"]]), "R.f: union branch 2 is a union (not allowed)"),
    ("union duplicate", field(["int", "string", "int"]), "R.f: union has two branches of type 'int' (branch 3)"),
    ("array of nulls", field({"type": "array", "items": "null"}), "R.f: an array of items that take no bytes (null, a fixed of size 0, a record of only such fields): a record of a few bytes could claim a billion of them, which every reader would build; hold a count (an int) instead"),
    ("array of empty records", field({"type": "array", "items": {"type": "record", "name": "E", "fields": []}}), "R.f: an array of items that take no bytes (null, a fixed of size 0, a record of only such fields): a record of a few bytes could claim a billion of them, which every reader would build; hold a count (an int) instead"),
    ("array of zero-size fixed", field({"type": "array", "items": {"type": "fixed", "name": "Z", "size": 0}}), "R.f: an array of items that take no bytes (null, a fixed of size 0, a record of only such fields): a record of a few bytes could claim a billion of them, which every reader would build; hold a count (an int) instead"),
    ("array of a dotted name's zero-size record", rec({"name": "a", "type": {"type": "array", "items": {"type": "record", "name": "x.R", "fields": [{"name": "w", "type": ZERO}]}}}, namespace="o"), "o.R.a: an array of items that take no bytes (null, a fixed of size 0, a record of only such fields): a record of a few bytes could claim a billion of them, which every reader would build; hold a count (an int) instead"),
    ("null namespace inside a namespace", rec({"name": "i", "type": {"type": "record", "name": "In", "namespace": "", "fields": []}}, namespace="shop"), 'shop.R.i: `namespace: ""` (the null namespace) inside namespace \'shop\': the registry\'s Avro parser would keep the type as shop.In, so the schema served would name another type than the one written; give the type a namespace of its own, or define it outside every namespace'),
    ("doc not a string", field("int", doc=5), "R.f: doc 5 must be a string"),
    ("order unknown", field("int", order="up"), 'R.f: order "up" is not ascending, descending or ignore'),
    ("field without type", rec({"name": "a"}), "R.a: the field has no `type`"),
    ("decimal precision", field({"type": "bytes", "logicalType": "decimal", "precision": 0}), "R.f: decimal precision 0 must be an integer from 1 to 2147483647 (Java's Avro, Kafka Connect's, reads it as an int)"),
    ("decimal precision over its fixed", field({"type": "fixed", "name": "D", "size": 2, "logicalType": "decimal", "precision": 5}), "R.f: decimal precision 5 does not fit a fixed of 2 bytes (at most 4 digits); make the fixed larger or the precision smaller"),
    ("decimal precision over an int", field({"type": "bytes", "logicalType": "decimal", "precision": 2**31}), "R.f: decimal precision 2147483648 must be an integer from 1 to 2147483647 (Java's Avro, Kafka Connect's, reads it as an int)"),
    ("decimal scale", field({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 5}), "R.f: decimal scale 5 must be an integer from 0 to the precision (4)"),
    ("record needing itself", rec({"name": "a", "type": "int"}, {"name": "next", "type": "R"}, namespace="x"), 'x.R.next: record x.R cannot hold a value: its field \'next\' (R) needs a record that, through fields that must have a value, needs itself again: no finite x.R exists, so none could ever be published; make a field of that cycle nullable (["null", ...] with default null) or an array'),
    ("records needing each other", rec({"name": "b", "type": rec({"name": "r", "type": ["R"]}, name="B")}), "R.b.r: record B cannot hold a value: its field 'r' (union) needs a record that, through fields that must have a value, needs itself again: no finite B exists, so none could ever be published; make a field of that cycle nullable ([\"null\", ...] with default null) or an array"),
    ("a nested record needing itself", rec({"name": "n", "type": rec({"name": "me", "type": "Node"}, name="Node")}), "R.n.me: record Node cannot hold a value: its field 'me' (Node) needs a record that, through fields that must have a value, needs itself again: no finite Node exists, so none could ever be published; make a field of that cycle nullable ([\"null\", ...] with default null) or an array"),
    ("enum without symbols", field({"type": "enum", "name": "K", "symbols": []}), "R.f: an enum needs a symbol (one without any holds no value)"),
    ("lone surrogate in doc", field("int", doc="\ud800"), '(schema).fields[0].doc: the string "\\ud800" holds U+D800 at character 1, which UTF-8 cannot encode (a lone surrogate); use the character itself or a valid surrogate pair'),
    ("lone surrogate in key", field("int", **{"x\udfff": 1}), '(schema).fields[0]: key: the string "x\\udfff" holds U+DFFF at character 2, which UTF-8 cannot encode (a lone surrogate); use the character itself or a valid surrogate pair'),
]  # fmt: skip


@pytest.mark.parametrize(("case", "schema"), VALID, ids=[c for c, _ in VALID])
def test_valid_schemas_parse(case: str, schema: Any) -> None:
    parse_schema(json.dumps(schema))  # text is JSON: the primitive "string" is '"string"'
    if not isinstance(schema, str):
        parse_schema(schema)


@pytest.mark.parametrize(("case", "schema", "message"), INVALID, ids=[c for c, *_ in INVALID])
def test_invalid_schemas_are_refused_with_the_field_path(
    case: str, schema: Any, message: str
) -> None:
    with pytest.raises(SchemaError) as raised:
        parse_schema(schema)
    assert str(raised.value) == f"invalid Avro schema: {message}"


def test_the_table_covers_the_eight_schemas_the_issue_found_accepted() -> None:
    cases = {case for case, *_ in INVALID}
    assert {
        "field name digit",
        "field name dash",
        "symbols not a list",
        "int default string",
        "int default null",
        "int default 2^40",
        "union default second branch",
        "field aliases string",
    } <= cases
    assert len(VALID) + len(INVALID) >= 43


def test_a_lone_surrogate_escaped_in_schema_text_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"^invalid Avro schema: \(schema\)\.doc: the string"):
        parse_schema('{"type": "record", "name": "R", "doc": "\\ud800", "fields": []}')


def test_limits_name_themselves() -> None:
    wide = rec(*({"name": f"f{i}", "type": "int"} for i in range(11)))
    with pytest.raises(SchemaError) as raised:
        parse_schema(wide, limits=SchemaLimits(max_fields=10))
    assert str(raised.value) == (
        "invalid Avro schema: R.f10: more than 10 fields in one schema (max_fields 10)"
    )
    enums = rec(*({"name": f"f{i}", "type": {**ENUM, "name": f"E{i}"}} for i in range(3)))
    with pytest.raises(SchemaError) as raised:
        parse_schema(enums, limits=SchemaLimits(max_named_types=3))
    assert str(raised.value) == (
        "invalid Avro schema: R.f2: more than 3 named types (records, enums, fixed) in one "
        "schema (max_named_types 3)"
    )
    deep: Any = "int"
    for _ in range(5):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SchemaError) as raised:
        parse_schema(field(deep), limits=SchemaLimits(max_depth=5))
    assert str(raised.value) == (
        "invalid Avro schema: R.f[][][][]: types nested more than 5 levels deep (max_depth 5)"
    )
    too_big = field("int", doc="x" * 100)
    for given in (too_big, json.dumps(too_big)):  # text is measured before it is decoded
        with pytest.raises(SchemaError) as raised:
            parse_schema(given, limits=SchemaLimits(max_bytes=100))
        assert str(raised.value) == (
            "invalid Avro schema: 184 bytes of JSON, more than the limit of 100 a schema may "
            "have (the registry's is MESH_REGISTRY_MAX_SCHEMA_BYTES)"
        )


def test_default_limits_take_the_largest_real_schemas_and_refuse_absurd_ones() -> None:
    parse_schema(rec(*({"name": f"f{i}", "type": "int"} for i in range(5000))))
    with pytest.raises(SchemaError, match=r"R\.f5000: more than 5000 fields in one schema"):
        parse_schema(rec(*({"name": f"f{i}", "type": "int"} for i in range(5001))))
    with pytest.raises(SchemaError, match="nested too deeply"):
        parse_schema("[" * 100_000 + "]" * 100_000)


def test_lenient_parsing_still_reads_what_was_stored_before() -> None:
    legacy = field("int", default="x")
    with pytest.raises(SchemaError):
        parse_schema(legacy)
    assert parse_schema(legacy, strict=False).to_json()["fields"][0]["default"] == "x"
    assert json.loads(normalize(legacy)) == legacy


def test_every_schema_of_the_repository_is_valid() -> None:
    files = [
        path
        for path in sorted(REPO.glob("**/*.avsc"))
        # the project's own schemas, not those of installed tools (.venv, .tools, npm packages)
        # nor lint's fixtures of a broken one and of a logicalType Avro ignores (it warns)
        if not {".venv", ".tools", "node_modules", "schema-broken-json", "logical-types"}
        & set(path.parts)
    ]
    assert len(files) >= 20
    for path in files:
        parse_schema(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("case", "schema", "message"), INVALID, ids=[c for c, *_ in INVALID])
def test_the_registry_core_refuses_each_with_42201_and_stores_nothing(
    case: str, schema: Any, message: str
) -> None:
    registry = SchemaRegistry(InMemoryStore())
    subject = "orders.order-placed.v1-value"
    with pytest.raises(InvalidSchemaError) as raised:
        registry.register(subject, json.dumps(schema))
    assert status_and_code(raised.value) == (422, 42201)
    assert raised.value.message == f"Invalid schema: invalid Avro schema: {message}"
    with pytest.raises(InvalidSchemaError):
        registry.check_compatibility(subject, schema)
    assert registry.subjects(deleted=True) == []


HTTP_CASES = [case for case in INVALID if "surrogate" not in case[0]]


@pytest.mark.parametrize(("case", "schema", "message"), HTTP_CASES, ids=[c for c, *_ in HTTP_CASES])
def test_the_registry_answers_each_with_422_42201_over_http(
    case: str, schema: Any, message: str
) -> None:
    client = make_client()
    subject = "orders.order-placed.v1-value"
    for path in (f"/subjects/{subject}/versions", f"/compatibility/subjects/{subject}/versions"):
        response = client.post(path, json={"schema": json.dumps(schema)}, auth=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json() == {
            "error_code": 42201,
            "message": f"Invalid schema: invalid Avro schema: {message}",
        }
    assert client.get("/subjects").json() == []


@pytest.mark.parametrize("where", ["doc", "key"])
def test_a_lone_surrogate_over_http_is_a_422_and_stores_nothing(where: str) -> None:
    # The HTTP edge refuses these before the parser (its own code, 42216); either way a 422.
    schema = field("int", doc="\ud800") if where == "doc" else field("int", **{"x\udfff": 1})
    client = make_client()
    body = json.dumps({"schema": json.dumps(schema)})  # lone surrogates stay \u escapes
    response = client.post(
        "/subjects/orders.order-placed.v1-value/versions",
        content=body,
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] in (42201, 42216)
    assert client.get("/subjects").json() == []


def test_a_refusal_carries_the_json_path_of_the_problem() -> None:
    nested = rec(
        {"name": "a", "type": "int"},
        {"name": "b", "type": {"type": "array", "items": rec({"name": "x", "type": "int", "default": "q"}, name="S")}},
    )  # fmt: skip
    with pytest.raises(SchemaError) as raised:
        parse_schema(nested)
    assert raised.value.loc == ("fields", 1, "type", "items", "fields", 0, "default")
    with pytest.raises(SchemaError) as raised:
        parse_schema(field(["null", "int", "int"]))
    assert raised.value.loc == ("fields", 0, "type")
    # a nested record needing itself is blamed at its own field, however deep
    inner = rec({"name": "a", "type": "int"}, {"name": "next", "type": "N"}, name="N")
    with pytest.raises(SchemaError, match=r"^invalid Avro schema: R\.i\.next: record N ") as raised:
        parse_schema(rec({"name": "i", "type": ["null", inner]}))
    assert raised.value.loc == ("fields", 0, "type", 1, "fields", 1, "type")


def test_the_null_namespace_outside_every_namespace_is_taken() -> None:
    """`namespace: ""` where no namespace encloses the type means what it says; refused only
    where the registry's parser would put the type in the enclosing namespace."""
    top = rec({"name": "i", "type": {"type": "record", "name": "In", "namespace": "", "fields": [{"name": "x", "type": "int"}]}}, namespace="")  # fmt: skip
    assert parse_schema(top).fullname == "R"
    stored = rec({"name": "i", "type": {"type": "record", "name": "In", "namespace": "", "fields": [{"name": "x", "type": "int"}]}}, namespace="shop")  # fmt: skip
    assert parse_schema(stored, strict=False).fullname == "shop.R"  # stored before: still read


def test_a_schema_stored_before_a_rule_still_answers_its_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A schema a newer rule refuses (here `namespace: ""` inside a namespace) was 422 on
    re-registration and lookup, which Confluent's serializers do on every start (a review):
    the subject holding it still answers its id; another subject is refused it."""
    inner = {"type": "record", "name": "In", "namespace": "", "fields": [{"name": "x", "type": "int"}]}  # fmt: skip
    older = json.dumps(rec({"name": "i", "type": inner}, namespace="shop"))
    store = InMemoryStore()
    registry = SchemaRegistry(store)
    store.open(registry.state.apply)
    subject = "orders.order-placed.v1-value"
    with monkeypatch.context() as earlier:  # the rules of the release that stored it
        earlier.setattr("mesh_stream.schema.avro.check_schema", lambda *_a, **_k: None)
        stored = registry.register(subject, older)
    assert registry.register(subject, older).schema_id == stored.schema_id
    assert registry.lookup(subject, older).schema_id == stored.schema_id
    refusal = r"the null namespace\) inside namespace"
    with pytest.raises(InvalidSchemaError, match=refusal):
        registry.register("orders.other.v1-value", older)
    # nothing new is made of it: another contract, a live copy of a deleted version
    with pytest.raises(InvalidSchemaError, match=refusal):
        registry.register(subject, older, metadata={"properties": {"owner": "x"}})
    registry.delete_subject(subject)
    with pytest.raises(InvalidSchemaError, match=refusal):
        registry.register(subject, older)
    assert registry.versions(subject, deleted=True) == [1]


def test_a_referenced_schema_is_not_judged_again() -> None:
    """A schema registered before the rule on zero-size array items still serves as a
    reference; the rule judges the new schema's own types."""
    stored = {
        "type": "record",
        "name": "r.Old",
        "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}],
    }
    parse_schema(rec({"name": "o", "type": "r.Old"}), named_types=[stored])
    endless = {"type": "record", "name": "r.Loop", "fields": [{"name": "n", "type": "r.Loop"}]}
    parse_schema(rec({"name": "o", "type": ["null", "r.Loop"]}), named_types=[endless])
