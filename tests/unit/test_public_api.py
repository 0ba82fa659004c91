"""The public surface is deliberate: a change to it must be a change to this test too."""

from __future__ import annotations

import inspect
import subprocess
import sys

import mesh_stream
from mesh_stream import errors

EXPECTED = {
    "AuthenticationError",
    "PermissionDeniedError",
    "ProcessorError",
    "SchemaNotFoundError",
    "SettingsError",
    "SubjectNotFoundError",
    "TooManyRequestsError",
    "TopicMismatchError",
    "VersionNotFoundError",
    "AsyncProductPublisher",
    "AuthError",
    "BrokerError",
    "BrokerUnreachableError",
    "ConfigurationError",
    "ConsumedRecord",
    "ConsumerError",
    "DataProduct",
    "DeliveryError",
    "DescriptorError",
    "DeserializationError",
    "RuleViolationError",
    "DeadLetteredRecord",
    "IncompatibleSchemaError",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "KafkaConnection",
    "KafkaSecurityError",
    "LintReport",
    "LocalCluster",
    "MeshError",
    "MeshSettings",
    "ProductConsumer",
    "ProductNotFoundError",
    "ProductPublisher",
    "ProductRejectedError",
    "ProjectNotFoundError",
    "PublishReport",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "SchemaError",
    "SerializationError",
    "Violation",
    "lint_repository",
    "load_descriptor",
    "load_descriptors",
    "local_cluster",
    "model_from_schema",
    "open_publisher",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(mesh_stream.__all__) == EXPECTED
    assert len(mesh_stream.__all__) == len(EXPECTED)
    for name in mesh_stream.__all__:
        assert getattr(mesh_stream, name) is not None


def test_every_error_derives_from_mesh_error() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(c, errors.MeshError) for c in classes)


def test_every_error_class_appears_in_the_documented_tree() -> None:
    doc = errors.__doc__ or ""
    missing = [
        c.__name__
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if c.__module__ == errors.__name__ and c.__name__ not in doc
    ]
    assert missing == []


def test_every_error_of_the_package_is_a_mesh_error_named_in_the_tree() -> None:
    """Errors defined beside their one use (processing, verify, the registry) belong to the
    tree too, and its docstring names them (h41: seven were missing from it)."""
    code = (
        "import importlib, pkgutil, mesh_stream\n"
        "from mesh_stream.errors import MeshError\n"
        "for info in pkgutil.walk_packages(mesh_stream.__path__, 'mesh_stream.'):\n"
        "    importlib.import_module(info.name)\n"
        "def below(c):\n"
        "    for s in c.__subclasses__():\n"
        "        yield s\n"
        "        yield from below(s)\n"
        "print('\\n'.join(sorted({c.__name__ for c in below(MeshError)"
        " if c.__module__.startswith('mesh_stream.')})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    names = done.stdout.split()
    assert len(names) > 60
    doc = errors.__doc__ or ""
    assert [name for name in names if name not in doc] == []


def test_serde_errors_are_also_confluent_kafka_errors() -> None:
    from confluent_kafka.serialization import SerializationError as KafkaSerializationError

    assert issubclass(errors.SerializationError, KafkaSerializationError)
    assert issubclass(errors.DeserializationError, KafkaSerializationError)


def test_names_load_on_first_use_and_submodules_stay_reachable_as_attributes() -> None:
    """``import mesh_stream`` imports nothing until a name is used (the `mesh` command's
    start-up and its Ctrl-C rely on it); what the eager imports once gave still works."""
    code = (
        "import sys, mesh_stream\n"
        "before = 'mesh_stream.producer' in sys.modules\n"
        "from mesh_stream import ProductPublisher\n"
        "print(before, 'mesh_stream.producer' in sys.modules, mesh_stream.errors.MeshError)\n"
        "try:\n"
        "    mesh_stream.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "False True <class 'mesh_stream.errors.MeshError'>",
        "module 'mesh_stream' has no attribute 'no_such_name'",
    ]
    assert set(dir(mesh_stream)) >= EXPECTED
