"""Shared inputs of the SDK unit tests: the test contracts and an in-memory schema source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sdk.helpers import make_order

__all__ = ["MemorySchemas", "load", "make_order"]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sdk"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return document


class MemorySchemas:
    """A schema-id -> schema-text source that counts lookups (the registry's role)."""

    def __init__(
        self,
        schemas: dict[int, dict[str, Any] | str],
        subjects: dict[int, list[str]] | None = None,
    ) -> None:
        self.schemas = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in schemas.items()
        }
        self.subjects = subjects or {}  # schema id -> subjects it is registered under
        self.calls = 0
        self.subject_calls = 0

    def get_schema(self, schema_id: int) -> str:
        from mesh_stream.errors import SchemaNotFoundError

        self.calls += 1
        if schema_id not in self.schemas:
            raise SchemaNotFoundError(f"schema {schema_id} not found", status=404, error_code=40403)
        return self.schemas[schema_id]

    def get_schema_subjects(self, schema_id: int) -> list[str]:
        self.subject_calls += 1
        return self.subjects.get(schema_id, [])


@pytest.fixture
def order_v1() -> dict[str, Any]:
    return load("order_v1.avsc")


@pytest.fixture
def order_v2() -> dict[str, Any]:
    return load("order_v2.avsc")


def offline_consumer(product: Any, registry: Any) -> Any:
    """A ProductConsumer whose messages a test hands to ``_decode`` directly: nothing answers
    at its address, and it asks for no metadata (new topics read from the beginning)."""
    from mesh_stream.consumer import ProductConsumer

    return ProductConsumer(
        [product],
        group_id="unit",
        bootstrap_servers="127.0.0.1:9",
        registry=registry,
        dead_letters=False,
        from_beginning=True,
        config={"log_level": 0},
        root=None,
    )
