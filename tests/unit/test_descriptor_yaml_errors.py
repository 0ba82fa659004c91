"""Descriptor YAML that does not parse: one line naming file:line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mesh_stream.descriptor import (
    load_descriptor,
    load_descriptors,
    non_text_key,
    parse_descriptor,
)
from mesh_stream.errors import DescriptorError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nkind: [\n", "f.yaml:3: not valid YAML: expected the node content, but found "
         "'<stream end>'"),
        ("a: 1\n---\nb: 2\n", "f.yaml:2: not valid YAML: but found another document"),
        ("a: !!python/object:os.system x\n", "f.yaml:1: not valid YAML: could not determine a "
         "constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("name: x\nwhen: 2026-02-30\n", "f.yaml:2: not valid YAML: day is out of range for month"),
        ("name: x\npartitions: " + "9" * 5000 + "\n", "f.yaml:2: not valid YAML: a number of 5000 "
         "digits, more than the 4300 Python reads"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml: not valid YAML: nested too deeply"),
        # an unclosed `[` is found at the next key: where it opened is said too (h34)
        ("name: x\ntags: [a, b\nkind: y\n", "f.yaml:3: not valid YAML: expected ',' or ']', "
         "but got ':' (in the flow sequence that starts on line 2)"),
        ("owner: {team: t\nkind: y\n", "f.yaml:2: not valid YAML: expected ',' or '}', but "
         "got ':' (in the flow mapping that starts on line 1)"),
    ],
)  # fmt: skip
def test_yaml_errors_are_one_line_with_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(DescriptorError) as raised:
        parse_descriptor(text, "f.yaml")
    assert str(raised.value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML keeps the last of two equal keys: the pii classification would silently go
        ("name: x\nclassification: pii\nclassification: public\n",
         "f.yaml:3: classification: given twice (first on line 2); keep one"),
        ("name: x\nslos:\n  freshness_seconds: 60\n  freshness_seconds: 6000\n",
         "f.yaml:4: freshness_seconds: given twice (first on line 3); keep one"),
        ("fields:\n  - {name: a, pii: true, pii: false}\n",
         "f.yaml:2: pii: given twice (first on line 2); keep one"),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused_at_its_second_line(text: str, expected: str) -> None:
    with pytest.raises(DescriptorError) as raised:
        parse_descriptor(text, "f.yaml")
    assert str(raised.value) == expected


def test_a_merge_key_may_repeat_what_it_merges() -> None:
    """``<<`` is not a key given twice: a key after it overrides the merged one, as YAML says."""
    from mesh_stream.descriptor import load_yaml

    text = "base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\n"
    assert load_yaml(text)["use"] == {"a": 1, "b": 3}


def test_a_key_yaml_reads_as_no_name_is_named_where_descriptors_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: shop.x\nowner:\n  team: t\n  on: call\n")
    with pytest.raises(DescriptorError) as caught:
        load_descriptor(bad)
    assert str(caught.value) == (
        f'{bad}:4: owner.on: YAML reads this key as a boolean, not a name; quote it ("on":) '
        "or fix its spelling"
    )


def test_the_key_check_names_the_first_bad_key_and_looks_into_merges() -> None:
    node = yaml.compose("a: {1: x}\nb: {2: y}\n")
    found = non_text_key(node)
    assert found is not None
    assert (found[0].value, found[1]) == ("1", "a.")
    merged = non_text_key(yaml.compose("c:\n  <<: {3: z}\n"))
    assert merged is not None
    assert (merged[0].value, merged[1]) == ("3", "c.")


def test_the_key_check_ends_on_an_alias_holding_itself() -> None:
    node = yaml.compose("a: &x {b: *x, c: [*x]}\nd: &y [*y, {1: 2}]\n")
    found = non_text_key(node)
    assert found is not None
    assert (found[0].value, found[1]) == ("1", "d[1].")


def test_a_descriptor_saved_as_utf16_is_called_utf16_not_a_bad_byte(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes("name: shop.x\n".encode("utf-16"))
    with pytest.raises(DescriptorError) as caught:
        load_descriptor(bad)
    assert str(caught.value) == (
        f"{bad}: cannot read descriptor: UTF-16 text (it begins with a UTF-16 byte-order "
        "mark), not UTF-8; save it as UTF-8"
    )


def test_a_descriptor_that_is_not_utf8_is_named_with_its_file_wherever_it_is_loaded(
    tmp_path: Path,
) -> None:
    """`products plan`, `acl plan`, `publish` and `tail` said only "text that is not valid
    Unicode/UTF-8 ... (UnicodeDecodeError)", with no file; `lint` said it its own way."""
    folder = tmp_path / "domains" / "shop" / "products"
    folder.mkdir(parents=True)
    bad = folder / "bad.yaml"
    bad.write_bytes(b"name: shop.x\n\xa1\xa2 latin-1 text\n")
    expected = (
        f"{bad}: cannot read descriptor: not UTF-8 text (byte 0xa1 at offset 13); save it as UTF-8"
    )
    with pytest.raises(DescriptorError) as one:
        load_descriptor(bad)
    assert str(one.value) == expected
    with pytest.raises(DescriptorError) as every:
        load_descriptors(tmp_path / "domains")
    assert str(every.value) == expected
