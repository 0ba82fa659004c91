"""`mesh up`: the whole mesh in one command. One module per part, so each is found by name.

- :mod:`~mesh_stream.up.orchestrator`: :class:`MeshUp`, the stages in order (start-up and
  shutdown order is in its docstring), :class:`UpOptions`, the one-run-per-data-dir lock.
- :mod:`~mesh_stream.up.plan`: which products come first and which domain a runnable acts for.
- :mod:`~mesh_stream.up.registry_access`: is a registry there, and the tokens to reach it.
- :mod:`~mesh_stream.up.broker_watch`: is Kafka there, and restarting the local broker.

The click command itself is :mod:`mesh_stream.cli.up`.
"""

from mesh_stream.up.broker_watch import BrokerWatch, broker_status, probe_kafka
from mesh_stream.up.orchestrator import MeshUp, UpOptions, single_instance
from mesh_stream.up.plan import domain_of, topological
from mesh_stream.up.registry_access import probe_registry, registry_credentials, writer_credential

__all__ = [
    "BrokerWatch",
    "MeshUp",
    "UpOptions",
    "broker_status",
    "domain_of",
    "probe_kafka",
    "probe_registry",
    "registry_credentials",
    "single_instance",
    "topological",
    "writer_credential",
]
