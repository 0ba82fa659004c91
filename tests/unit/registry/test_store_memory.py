"""The in-memory store behaves as the Kafka store does at its edges: an unencodable record
is a 422 before anything is stored, and it reports readiness."""

from __future__ import annotations

import pytest

from mesh_stream.errors import UnencodableInputError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service.state import Record, RegistryState
from mesh_stream.registry.service.store import InMemoryStore


def test_a_lone_surrogate_is_a_422_and_nothing_of_the_batch_is_stored() -> None:
    store = InMemoryStore()
    state = RegistryState()
    assert store.readiness() == (False, {"reason": "not opened", "records": 0})
    store.open(state.apply)
    good = Record(("config", None), {"compatibility": "FULL"})
    bad = Record(("schema", 1), {"schema": '{"type": "string", "doc": "\ud800"}'})
    with pytest.raises(UnencodableInputError) as refused:
        store.append([good, bad])
    assert status_and_code(refused.value) == (422, 42216)
    assert refused.value.message == (
        "the request holds text that cannot be stored as UTF-8: '\\ud800' at character 45 of "
        "the schema record [1] (surrogates not allowed); send valid Unicode (a lone surrogate "
        "such as \\ud800 is not)"
    )
    assert store.records == []
    assert state.configs == {}
    store.append([good])
    assert store.readiness() == (True, {"records": 1})
    assert store.starting() is None
