"""Find the line of a field in a YAML (or JSON) document, so violations can say file:line.

JSON is read with the YAML composer too (JSON is almost always valid YAML); when a
document cannot be composed, lines are simply unknown and violations name the file only.
"""

from __future__ import annotations

import yaml

from mesh_stream.governance.model import Loc


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (with positions), or None when it does not parse."""
    try:
        return yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return None


def line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the node at ``loc``, or of its nearest existing ancestor."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
            if child is not None:
                key = next(k for k, v in node.value if v is child)
                line = key.start_mark.line + 1  # a key's line, even when its value is a block
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
            if child is not None:
                line = _named_line(child)
        if child is None:
            break
        node = child
    return line


def _named_line(node: yaml.Node) -> int:
    """The line of a list item: of its ``name`` key when it is a mapping that has one (an
    Avro field written over several lines starts with ``{`` a line above its name)."""
    if isinstance(node, yaml.MappingNode):
        for key, _value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "name":
                return int(key.start_mark.line) + 1
    return int(node.start_mark.line) + 1
