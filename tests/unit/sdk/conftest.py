"""Shared inputs of the SDK unit tests: the test contracts and an in-memory schema source."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sdk"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


class MemorySchemas:
    """A schema-id -> schema-text source that counts lookups (the registry's role)."""

    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = {key: json.dumps(value) for key, value in schemas.items()}
        self.calls = 0

    def get_schema(self, schema_id: int) -> str:
        from mesh_stream.errors import SchemaNotFoundError

        self.calls += 1
        if schema_id not in self.schemas:
            raise SchemaNotFoundError(f"schema {schema_id} not found", status=404, error_code=40403)
        return self.schemas[schema_id]


@pytest.fixture
def order_v1() -> dict[str, Any]:
    return load("order_v1.avsc")


@pytest.fixture
def order_v2() -> dict[str, Any]:
    return load("order_v2.avsc")


def make_order(index: int = 0) -> dict[str, Any]:
    """A valid v1 record whose values depend on ``index``."""
    return {
        "order_id": str(uuid.UUID(int=index + 1)),
        "customer_email": f"buyer{index}@example.com",
        "placed_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=index),
        "status": ["PLACED", "PAID", "CANCELLED"][index % 3],
        "total": decimal.Decimal(index * 7) / 4,
        "quantity": index % 5 + 1,
        "express": index % 2 == 0,
        "lines": [{"sku": f"sku-{index}-{n}", "count": n + 1} for n in range(index % 3)],
        "note": None if index % 4 else f"note {index}",
    }
