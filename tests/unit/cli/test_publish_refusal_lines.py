"""A registry refusal of a project's schema names the line of the field it names (h44:
`mesh publish` said only the `.avsc` file, where lint and plan say file:line)."""

from __future__ import annotations

import json
from pathlib import Path

from mesh_stream.cli.publish import _at_field_line
from mesh_stream.errors import IncompatibleSchemaError


def test_the_first_field_named_gets_its_line(tmp_path: Path) -> None:
    avsc = tmp_path / "schemas" / "orders" / "order-placed.avsc"
    avsc.parent.mkdir(parents=True)
    fields = [{"name": "order_id", "type": "string"}, {"name": "warehouse", "type": "string"}]
    avsc.write_text(json.dumps({"type": "record", "name": "P", "fields": fields}, indent=2))
    line = avsc.read_text().splitlines().index('      "name": "warehouse",') + 1
    said = (
        f"{avsc}: the registry refused the value schema of orders.order-placed (subject "
        f"orders.order-placed.v1-value): field warehouse: added without a default; ..."
    )
    located = _at_field_line(IncompatibleSchemaError(said, status=409, error_code=409))
    assert isinstance(located, IncompatibleSchemaError)
    assert located.message == f"{avsc}:{line}{said[len(str(avsc)) :]}"
    assert located.status == 409
    # a removed field has no line, nor has a message without a field: left as they were
    gone = IncompatibleSchemaError(said.replace("warehouse", "coupon"), status=409)
    assert _at_field_line(gone) is gone
    plain = IncompatibleSchemaError(f"{avsc}: the registry refused it", status=409)
    assert _at_field_line(plain) is plain
