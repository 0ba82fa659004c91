"""Descriptor YAML that does not parse: one line naming file:line and the problem."""

from __future__ import annotations

import pytest

from mesh_stream.descriptor import parse_descriptor
from mesh_stream.errors import DescriptorError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nkind: [\n", "f.yaml:3: not valid YAML: expected the node content, but found "
         "'<stream end>'"),
        ("a: 1\n---\nb: 2\n", "f.yaml:2: not valid YAML: but found another document"),
        ("a: !!python/object:os.system x\n", "f.yaml:1: not valid YAML: could not determine a "
         "constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("name: x\nwhen: 2026-02-30\n", "f.yaml: not valid YAML: day is out of range for month"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml: not valid YAML: nested too deeply"),
    ],
)  # fmt: skip
def test_yaml_errors_are_one_line_with_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(DescriptorError) as raised:
        parse_descriptor(text, "f.yaml")
    assert str(raised.value) == expected
