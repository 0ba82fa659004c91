"""The registry state fold: O(1) updates in place, the id -> users index, snapshots that
readers may hold while the tail applies, and schema id clashes refused loudly."""

from __future__ import annotations

import pytest

from mesh_stream.errors import RegistryWriterConflictError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service.state import Record, RegistryState


def schema(state: RegistryState, schema_id: int, text: str) -> None:
    state.apply(Record(("schema", schema_id), {"schema": text}))


def version(
    state: RegistryState, subject: str, number: int, schema_id: int | None, deleted: bool = False
) -> None:
    value = None if schema_id is None else {"id": schema_id, "deleted": deleted}
    state.apply(Record(("version", subject, number), value))


def test_the_users_index_follows_soft_and_hard_deletes() -> None:
    state = RegistryState()
    schema(state, 1, '"string"')
    version(state, "a-value", 1, 1)
    version(state, "b-value", 3, 1)
    assert state.users[1] == {("a-value", 1), ("b-value", 3)}
    version(state, "a-value", 1, 1, deleted=True)  # soft delete keeps the use
    assert state.users[1] == {("a-value", 1), ("b-value", 3)}
    version(state, "a-value", 1, None)  # hard delete drops it
    assert state.users[1] == {("b-value", 3)}
    assert "a-value" not in state.versions
    version(state, "b-value", 3, None)
    assert 1 not in state.users
    assert state.schemas == {1: '"string"'}  # schemas stay, so ids are never reused
    assert state.max_id == 1


def test_big_maps_are_updated_in_place_and_small_ones_replaced() -> None:
    state = RegistryState()
    versions, schemas = state.versions, state.schemas
    for n in range(1, 2_001):
        schema(state, n, f'{{"type": "fixed", "name": "F{n}", "size": 1}}')
        version(state, f"s{n}-value", 1, n)
    assert state.versions is versions
    assert state.schemas is schemas
    assert len(versions) == 2_000
    assert state.applied == 4_000
    held = state.versions["s1-value"]
    version(state, "s1-value", 2, 2)
    assert sorted(held) == [1]  # a reader's copy is not changed under it
    assert sorted(state.versions["s1-value"]) == [1, 2]
    items = state.version_items()
    version(state, "new-value", 1, 1)
    assert len(items) == 2_000


def test_products_are_a_snapshot_refreshed_after_each_change() -> None:
    state = RegistryState()
    state.apply(Record(("product", "orders.a"), {"descriptor": {"name": "orders.a"}}))
    first = state.products
    assert state.products is first  # shared until something changes
    state.apply(Record(("product", "orders.b"), {"descriptor": {"name": "orders.b"}}))
    assert sorted(first) == ["orders.a"]
    assert sorted(state.products) == ["orders.a", "orders.b"]
    state.apply(Record(("product", "orders.a"), None))
    assert sorted(state.products) == ["orders.b"]


def test_a_schema_id_written_again_with_another_schema_is_refused_and_the_first_kept() -> None:
    state = RegistryState()
    schema(state, 7, '"string"')
    schema(state, 7, '"string"')  # the same schema again (a replayed duplicate) is fine
    with pytest.raises(RegistryWriterConflictError) as clash:
        schema(state, 7, '"long"')
    assert status_and_code(clash.value) == (503, 50303)
    assert clash.value.message == (
        "schema id 7 was written again with a different schema: two registry writers handed "
        "out the same id; every registry instance on one topic must use the same "
        "MESH_REGISTRY_WRITER_ID"
    )
    assert state.schemas[7] == '"string"'
    assert state.ids_by_schema == {'"string"': 7}


def test_the_latest_writer_claim_is_remembered() -> None:
    state = RegistryState()
    claim = {"writer_id": "w1", "instance": "i1", "renewed_at_ms": 1, "lease_ms": 30_000}
    state.apply(Record(("writer",), claim))
    assert state.writer == claim
    state.apply(Record(("writer",), {**claim, "writer_id": "w2"}))
    assert state.writer is not None
    assert state.writer["writer_id"] == "w2"


def test_records_decode_strictly() -> None:
    record = Record(("version", "a-value", 1), {"id": 1, "deleted": False})
    key, value = record.encode()
    assert Record.decode(key, value, "t[0]@0") == record
    with pytest.raises(Exception, match=r"^t\[0\]@1: registry record is not JSON: extra data"):
        Record.decode(key + b" []", value, "t[0]@1")
    with pytest.raises(Exception, match=r"^t\[0\]@2: registry record is not JSON: "):
        Record.decode(b"\xff", value, "t[0]@2")
