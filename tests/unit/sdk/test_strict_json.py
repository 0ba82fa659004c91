"""The one strict JSON decoder (registry bodies and schema text): numbers JSON cannot carry
are refused at their JSON path, in document order; `.avsc` files read by the SDK too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mesh_stream.errors import SchemaError
from mesh_stream.schema import strict_json
from mesh_stream.schema.avro import parse_schema
from mesh_stream.schema.codec import load_schema_file


def test_the_first_non_finite_number_is_named_by_path_and_literal() -> None:
    with pytest.raises(strict_json.NonFiniteNumberError) as refused:
        strict_json.loads('{"a": [1, {"b": 1e999}], "c": NaN}')
    assert (refused.value.literal, refused.value.loc, refused.value.path) == (
        "1e999",
        ("a", 1, "b"),
        "a[1].b",
    )
    assert str(refused.value) == "number 1e999 is out of range for a 64-bit float"
    with pytest.raises(strict_json.NonFiniteNumberError, match=r"^-Infinity is not JSON$") as top:
        strict_json.loads("-Infinity")
    assert top.value.path == "(top level)"
    assert strict_json.loads('{"a": [1.5, -2, 1e308]}') == {"a": [1.5, -2, 1e308]}
    with pytest.raises(ValueError, match=r"^a number of 5 digits, more than the 4 a registry"):
        strict_json.loads("[12345]", max_int_digits=4)
    # more digits than Python reads: an error at the number's line and column, not a crash
    long = "9" * 5000
    with pytest.raises(json.JSONDecodeError) as too_long:
        strict_json.loads('{"s": "' + long + '",\n "n": -' + long + "}")
    assert (too_long.value.msg, too_long.value.lineno, too_long.value.colno) == (
        "a number of 5000 digits, more than the 4300 Python reads",
        2,
        7,
    )


def test_decoded_documents_are_checked_the_same_way() -> None:
    assert strict_json.non_finite({"x": [0.5, {"y": -math.inf}]}) == ("-Infinity", ("x", 1, "y"))
    assert strict_json.non_finite({"x": [0.5, "NaN"]}) is None
    document = {"type": "record", "name": "R", "fields": [], "x-prop": math.nan}
    with pytest.raises(SchemaError, match=r"^invalid Avro schema: x-prop: NaN is not JSON; ") as e:
        parse_schema(document)
    assert e.value.loc == ("x-prop",)


def test_schemas_stored_before_the_rule_still_read_leniently() -> None:
    text = '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":NaN}]}'
    with pytest.raises(SchemaError, match=r"fields\[0\]\.default: NaN is not JSON"):
        parse_schema(text)
    assert parse_schema(text, strict=False).fullname == "R"


def test_an_avsc_with_infinity_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.avsc"
    path.write_text(
        '{"type": "record", "name": "R",\n "fields": [{"name": "a", "type": "double",\n'
        '  "default": Infinity}]}\n'
    )
    with pytest.raises(SchemaError) as refused:
        load_schema_file(path)
    assert str(refused.value) == (
        f"{path}: invalid Avro schema: fields[0].default: Infinity is not JSON; JSON numbers "
        f"are finite 64-bit floats (NaN and infinities have no JSON form): write a finite number"
    )
    assert refused.value.loc == ("fields", 0, "default")
