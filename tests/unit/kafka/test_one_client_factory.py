"""Kafka clients are built in one module, so every client gets the secured connection.

``client_constructions`` finds every call of a Kafka client or topic constructor in
``mesh_stream/``. The test pins the files that still build clients themselves: a new
file that does fails it. The lead shrinks ``STILL_BUILDING_THEIR_OWN`` as callers move to
``mesh_stream.kafka.clients`` (make_producer, make_consumer, make_admin, new_topic) until
only that module is left.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mesh_stream

PACKAGE = Path(mesh_stream.__file__).parent
CONSTRUCTORS = frozenset(
    {
        "Producer",
        "Consumer",
        "AdminClient",
        "NewTopic",
        "SerializingProducer",
        "DeserializingConsumer",
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaAdminClient",
    }
)
HOME = "kafka/clients.py"
STILL_BUILDING_THEIR_OWN: set[str] = set()
#: `mesh bench`'s baselines (c) and (h) are confluent-kafka's own serde clients on purpose;
#: their config is still rendered by the one connection (``sdk_bench.producer_config``).
BASELINES = {"bench/sdk_bench.py"}


def client_constructions(root: Path) -> dict[str, list[str]]:
    """``{file relative to root: ["Name@line", ...]}`` for every Kafka constructor call."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in CONSTRUCTORS:
                found.setdefault(path.relative_to(root).as_posix(), []).append(
                    f"{name}@{node.lineno}"
                )
    return found


def test_only_the_client_module_and_known_callers_build_kafka_clients() -> None:
    found = client_constructions(PACKAGE)
    assert HOME in found
    assert set(found) == {HOME} | STILL_BUILDING_THEIR_OWN | BASELINES, (
        "build Kafka clients with mesh_stream.kafka.clients (make_producer, make_consumer, "
        f"make_admin, new_topic); found: {found}"
    )


def test_the_finder_sees_plain_and_qualified_calls(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "import confluent_kafka\n"
        "p = confluent_kafka.Producer({})\n"
        "t = NewTopic('x')\n"
        "class MeshProducer:\n    pass\n"
        "m = MeshProducer()\n"
        "# Consumer( in a comment\n"
    )
    (tmp_path / "b.py").write_text("x = 'AdminClient(' \n")
    assert client_constructions(tmp_path) == {"a.py": ["Producer@2", "NewTopic@3"]}
