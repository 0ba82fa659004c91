"""Product registration, the one home: a product's topic exists, its value schema has an id,
its descriptor is in the registry's catalog.

Every path that registers a product goes through here: `mesh up`, `mesh products apply`,
the processors (their own output) and the SDK's ``open_publisher`` (a product of the local
project the catalog lacks). Topics are created with the partitions, retention and cleanup
policy of the descriptor (faust ignores source topics that do not exist when a worker
starts, and would create an output topic with its own defaults). The value schema is
registered under the product's subject (``<topic>-value``), which gives the schema id for
the wire framing; the descriptor makes the product, with its lineage, discoverable.

This module sits in the products layer, below the SDK and the registry client: it talks to
the registry through :class:`ProductRegistry`, a protocol the client satisfies.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mesh_stream.contracts import Contract, compile_contract
from mesh_stream.descriptor import (
    DataProduct,
    ProductSource,
    RuleFailure,
    descriptor_files,
    load_descriptor,
    resolve_product,
)
from mesh_stream.errors import (
    BrokerError,
    BrokerUnreachableError,
    ConfigurationError,
    DeliveryError,
    DescriptorError,
    IncompatibleSchemaError,
    KafkaSecurityError,
    MeshError,
    ProductNotFoundError,
    ProductRejectedError,
    RegistryError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    SchemaRejectedError,
    SubjectNotFoundError,
    TooManyAuthFailuresError,
    TooManyRequestsError,
)
from mesh_stream.files import not_utf8, read_regular_text
from mesh_stream.kafka import topics
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import MeshProject
from mesh_stream.schema.codec import as_document, load_schema_file


class SchemaVersion(Protocol):
    """A registered schema version, as far as registration reads it."""

    @property
    def schema(self) -> str: ...


class ContractVersion(SchemaVersion, Protocol):
    """A registered schema version with the data contract the registry stored for it."""

    @property
    def schema_id(self) -> int: ...

    @property
    def version(self) -> int: ...

    @property
    def rule_set(self) -> dict[str, Any] | None: ...


class ProductRegistry(ProductSource, Protocol):
    """What registration needs of the registry (:class:`RegistryClient` is one); a
    protocol, like :class:`~mesh_stream.descriptor.ProductSource`, so this layer never
    imports the client above it."""

    def register_schema(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> int: ...

    def register_version(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> ContractVersion: ...

    def get_latest(self, subject: str) -> ContractVersion: ...

    def lookup(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> ContractVersion: ...

    def set_compatibility(self, level: str, subject: str | None = None) -> None: ...

    def put_product(self, product: DataProduct) -> dict[str, Any]: ...

    def list_products(self) -> list[dict[str, Any]]: ...


class ReaderRegistry(Protocol):
    """What registering a consumer group needs of the registry (the client is one)."""

    def register_consumer(
        self,
        product: str,
        group: str,
        *,
        reads: Sequence[str] = (),
        contact: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]: ...


T = TypeVar("T")

log = logging.getLogger(__name__)


def topic_config(product: DataProduct) -> dict[str, str]:
    """Kafka topic configs that carry out the descriptor's retention and cleanup policy."""
    return {
        "cleanup.policy": product.retention.cleanup_policy.value,
        "retention.ms": str(product.retention.ms),
    }


def _connection(kafka: KafkaConnection | str) -> KafkaConnection:
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection.create(kafka)


def ensure_topics(
    kafka: KafkaConnection | str, products: Iterable[DataProduct], *, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics of ``products``; returns the names created.

    ``kafka`` is the connection (a bare ``host:port`` string means PLAINTEXT). Each topic's
    spec (replication factor, ``min.insync.replicas``) comes from
    :func:`mesh_stream.kafka.topics.product_topic_spec`.
    """
    conn = _connection(kafka)
    wanted = {product.topic: product for product in products}
    if not wanted:
        return []
    admin = make_admin(conn, {"log_level": 0})
    cluster = topics.cluster_info(conn, admin=admin, timeout=timeout)
    specs = [topics.product_topic_spec(product, cluster) for product in wanted.values()]
    created: list[str] = []
    topics.ensure_topics(conn, specs, admin=admin, timeout=timeout, created=created)
    return [topic for topic in wanted if topic in created]


def absent_topics(
    kafka: KafkaConnection | str,
    products: Iterable[DataProduct],
    *,
    wait: float = 5.0,
    timeout: float = 30.0,
) -> list[DataProduct]:
    """The ``products`` whose topic the cluster does not have, asked again for up to ``wait``
    seconds (a topic just created may take a moment to show on every broker).

    For readers such as a processor: a product's topic is its owning domain's to create
    (with its partitions and retention), never a reader's.
    """
    conn = _connection(kafka)
    wanted = list(products)
    if not wanted:
        return []
    admin = make_admin(conn, {"log_level": 0})
    deadline = time.monotonic() + wait
    while True:
        existing = topics.list_topic_names(admin, conn, timeout=timeout)
        absent = [product for product in wanted if product.topic not in existing]
        if not absent or time.monotonic() >= deadline:
            return absent
        time.sleep(0.5)


def ensure_product_topic(
    product: DataProduct,
    connection: KafkaConnection,
    *,
    topic: str | None = None,
    differences: list[topics.TopicDifference] | None = None,
    dead_letters: bool = False,
    create: bool = True,
) -> int | None:
    """Create the product's topic (or ``topic``, e.g. its DLQ) as the descriptor says, if missing.

    ``dead_letters``: ``topic`` is a dead-letter topic of the product, specified by
    :func:`mesh_stream.kafka.topics.dlq_topic_spec` (never compacted).

    The spec (partitions, retention, cleanup policy, replication factor and
    ``min.insync.replicas``) comes from :func:`mesh_stream.kafka.topics.product_topic_spec`;
    an existing topic that differs from it is reported (a warning), see that module.
    Returns an existing topic's ``max.message.bytes`` when it is known (None otherwise);
    ``differences``, if given, gets how an existing topic differs from the spec.
    With ``create=False`` the spec is only made (a replication factor above the cluster's
    brokers is refused) and nothing is created.
    """
    name = topic or product.topic
    configs: dict[str, Mapping[str, str]] = {}
    try:
        cluster = topics.cluster_info(connection)
        spec = (
            topics.dlq_topic_spec(product, cluster, topic=name)
            if dead_letters
            else topics.product_topic_spec(product, cluster, topic=name)
        )
        if not create:
            return None
        found = topics.ensure_topic(connection, spec, configs=configs)
        if differences is not None:
            differences.extend(found)
    except KafkaSecurityError:
        raise
    except ConfigurationError:
        raise
    except BrokerUnreachableError as exc:  # nothing was sent: not a delivery that failed
        raise BrokerUnreachableError(
            f"cannot check or create topic {name} for {product.name}: {exc}; start Kafka "
            f"with `mesh broker start` or set MESH_BOOTSTRAP_SERVERS"
        ) from exc
    except MeshError as exc:
        raise DeliveryError(
            f"cannot create topic {name} for {product.name} at {connection.bootstrap_servers}: "
            f"{exc}; start Kafka with `mesh broker start` or set MESH_BOOTSTRAP_SERVERS"
        ) from exc
    limit = configs.get(name, {}).get("max.message.bytes")
    return int(limit) if limit is not None and limit.isdigit() else None


def writes_dead_letters(product: DataProduct) -> bool:
    """Whether a quality rule of ``product`` sends failing records to its dead-letter topic."""
    return any(rule.on_failure is RuleFailure.DLQ for rule in product.rules)


def ensure_dlq_topics(
    kafka: KafkaConnection | str,
    products: Iterable[DataProduct],
    *,
    timeout: float = 30.0,
    every: bool = False,
    correct: bool = False,
) -> list[str]:
    """Create the missing dead-letter topics of ``products`` whose DLQ rules write there
    (``every``: of all of them, e.g. a processor's inputs, whose undecodable records go
    there), each from :func:`mesh_stream.kafka.topics.dlq_topic_spec`; returns the names
    created. ``correct`` (their owner only) sets an existing one's retention and cleanup
    policy to the spec's."""
    conn = _connection(kafka)
    writers = [product for product in products if every or writes_dead_letters(product)]
    if not writers:
        return []
    admin = make_admin(conn, {"log_level": 0})
    cluster = topics.cluster_info(conn, admin=admin, timeout=timeout)
    specs = [topics.dlq_topic_spec(product, cluster) for product in writers]
    created: list[str] = []
    topics.ensure_topics(
        conn, specs, admin=admin, timeout=timeout, created=created, correct=correct
    )
    return created


def ensure_internal_topic(
    kafka: KafkaConnection | str,
    topic: str,
    partitions: int,
    *,
    compacted: bool = False,
    timeout: float = 30.0,
) -> None:
    """Create a processor's internal topic (re-key, DLQ or changelog) before faust starts.

    Faust would create it itself, but its first partition assignment can run before the new
    topic shows up in metadata, and then the worker never reads it. Its spec comes from
    :func:`mesh_stream.kafka.topics.topic_spec` (the cluster's replication factor).
    """
    conn = _connection(kafka)
    admin = make_admin(conn, {"log_level": 0})
    cluster = topics.cluster_info(conn, admin=admin, timeout=timeout)
    spec = topics.topic_spec(
        topic,
        cluster,
        partitions=partitions,
        cleanup_policy="compact" if compacted else "delete",
    )
    topics.ensure_topic(conn, spec, admin=admin, timeout=timeout)
    deadline = time.monotonic() + timeout
    while topic not in admin.list_topics(topic, timeout=timeout).topics:
        if time.monotonic() > deadline:
            raise BrokerError(f"internal topic {topic} does not show up in the broker metadata")
        time.sleep(0.2)


def schema_text(product: DataProduct, project_root: Path) -> str:
    """The `.avsc` of ``product`` in the project at ``project_root``; errors name the
    descriptor field."""
    path = product.schema_path(project_root)
    try:
        return read_regular_text(path)
    except OSError as exc:
        raise SchemaError(
            f"{product.name}: schema: cannot read {path}: {exc.strerror}; the descriptor's "
            "`schema` must be a path relative to the project root (the folder of mesh.yaml)"
        ) from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(
            f"{product.name}: schema: {path} is {not_utf8(exc)}; save it as UTF-8"
        ) from exc


def register_product(
    registry: ProductRegistry,
    product: DataProduct,
    project_root: Path,
    *,
    wait_for_inputs: float = 120.0,
    poll_interval: float = 1.0,
    set_level: bool = False,
) -> int:
    """Register the value schema under ``<topic>-value`` and the descriptor; return the id.

    The registry accepts a product only when its inputs (its lineage) are registered, which
    the source domains do when their publishers start; so this waits up to
    ``wait_for_inputs`` seconds for them, then names the ones still missing. ``set_level``
    also sets the subject's compatibility level to the descriptor's (`mesh up`).
    """
    schema_id = register_value_schema(
        registry,
        product,
        schema_text(product, project_root),
        source=product.schema_path(project_root),
    )
    if set_level:
        set_compatibility(registry, product)
    deadline = time.monotonic() + wait_for_inputs
    while True:
        missing = [name for name in product.inputs if not _is_registered(registry, name)]
        if not missing:
            break
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"{product.name}: inputs {', '.join(missing)} are not registered in the "
                f"registry at {registry.url} after {wait_for_inputs:.0f} s; publish them "
                "first (`mesh products apply` in their domains' projects, or start their "
                "publishers)"
            )
        time.sleep(poll_interval)
    register_descriptor(registry, product)
    return schema_id


def register_value_schema(
    registry: ProductRegistry,
    product: DataProduct,
    text: str,
    *,
    source: Path | str | None = None,
) -> int:
    """Register ``text`` as the value schema of ``product`` (``<topic>-value``); its id.

    The descriptor's contract goes with it (see :func:`register_contract`). Idempotent: the
    same schema and contract again return the same id and add no version.
    """
    return _register(registry.register_schema, product, text, source)


def register_contract(
    registry: ProductRegistry,
    product: DataProduct,
    schema: str | Mapping[str, Any],
    *,
    source: Path | str | None = None,
) -> ContractVersion:
    """Register the value schema of ``product`` with its data contract: the descriptor's
    ``rules`` as the Confluent ``ruleSet`` and the ``"pii": true`` marks as ``metadata``
    field tags (:func:`mesh_stream.contracts.compile_contract`, which refuses a rule whose
    CEL does not compile). Returns the version the registry stored, with its ``ruleSet``
    (what the publisher enforces).

    A refusal by the registry (governance 42218, incompatible 409) names the product, the
    subject and ``source``, the ``.avsc`` file (the descriptor's ``schema`` when not given).

    A version already registered is looked up first (a read): a publisher whose credential
    may only read the registry starts on what its owner registered (registering the same
    schema again is a write, refused to it), and any registry instance answers, not only
    the writer.
    """
    try:
        return _register(registry.lookup, product, schema, source)
    except (SchemaNotFoundError, SubjectNotFoundError):
        return _register(registry.register_version, product, schema, source)


def registered_contract(
    registry: ProductRegistry,
    product: DataProduct,
    schema: str | Mapping[str, Any],
    *,
    source: Path | str | None = None,
) -> ContractVersion:
    """The version already holding ``schema`` with the product's contract (as
    :func:`register_contract` would register it), never registering one: for publishers
    whose auto-registration is off. None registered is a :class:`ConfigurationError`
    naming the product, the subject and ``source``, and how to register it."""
    try:
        return _register(registry.lookup, product, schema, source)  # the same request's body
    except (SchemaNotFoundError, SubjectNotFoundError) as exc:
        raise ConfigurationError(
            f"{source or product.schema_file}: the value schema of {product.name} with its "
            f"descriptor's contract is not registered under {product.value_subject}, and "
            f"MESH_PRODUCER_AUTO_REGISTER=false keeps publishers from registering it; "
            f"register it with `mesh products plan` / `mesh products apply` (or publish with "
            f"the schema and rules the registry holds)"
        ) from exc


def enforced_version(
    registry: ProductRegistry, product: DataProduct, registered: ContractVersion
) -> ContractVersion:
    """The version whose contract a publisher of ``registered``'s schema enforces: the
    subject's latest when it holds the same schema, else ``registered``. Rules added to the
    subject since (through Confluent's API, not the descriptor) are on the latest version
    only, and a Confluent serializer with ``use.latest.version`` enforces them: so does the
    publisher. A latest version with another schema is another publisher's change; the
    publisher keeps its own schema and its contract."""
    try:
        latest = registry.get_latest(product.value_subject)
    except RegistryUnavailableError:
        return registered  # registered a moment ago; the latest can wait for a restart
    if latest.version > registered.version and latest.schema == registered.schema:
        return latest
    return registered


def _register(
    call: Callable[..., T],
    product: DataProduct,
    schema: str | Mapping[str, Any],
    source: Path | str | None,
) -> T:
    """``call`` (a register or lookup method) with the value subject, ``schema`` and the product's
    compiled contract, retried while the registry is unreachable; a refusal names the
    product, the subject and ``source``."""
    contract = _contract(product, schema)
    try:
        return _patiently(
            lambda: call(
                product.value_subject,
                schema,
                metadata=contract.metadata,
                rule_set=contract.rule_set,
            )
        )
    except (SchemaRejectedError, IncompatibleSchemaError) as exc:
        raise _schema_refusal(exc, product, source or product.schema_file) from exc


def _contract(product: DataProduct, schema: str | Mapping[str, Any]) -> Contract:
    try:
        document: Mapping[str, Any] = as_document(schema)
    except SchemaError:
        document = {}  # not a record: the registry explains what is wrong with it
    return compile_contract(product, document)


def _schema_refusal(
    exc: SchemaRejectedError | IncompatibleSchemaError, product: DataProduct, source: Path | str
) -> RegistryError:
    """``exc`` again (same class, status, code, violations), its message naming the product,
    the subject and the ``.avsc`` file, since that is where the fix goes."""
    fix = (
        "make the change compatible as the registry says, or publish it as a new major "
        "version (`version:` in the descriptor)"
        if isinstance(exc, IncompatibleSchemaError)
        else "fix the schema (`mesh lint` checks the same policies) and publish again"
    )
    refusal = copy.copy(exc)
    refusal.message = (
        f"{source}: the registry refused the value schema of {product.name} (subject "
        f"{product.value_subject}): {exc.message}; {fix}"
    )
    refusal.args = (refusal.message,)
    return refusal


def register_reader(
    registry: ReaderRegistry,
    product: str,
    group: str,
    reads: Sequence[str],
    *,
    description: str | None = None,
) -> bool:
    """Register consumer group ``group`` on ``product`` with the top-level fields it
    ``reads``, so the registry refuses versions that remove or retype them; best effort: a
    reader works without it, so a failure is a warning naming the command that registers it
    later, and the answer says whether it was registered."""
    try:
        registry.register_consumer(product, group, reads=list(reads), description=description)
    except MeshError as exc:
        status = getattr(exc, "status", None)
        if getattr(exc, "retryable", True):  # unreachable, busy or failing: ask again later
            later = (
                f"`mesh products consumers {product} --register {group} --reads "
                f"{','.join(reads)}` once the registry answers"
            )
        elif status in (401, 403):
            later = (
                "register it with the credential of the domain the group is named after "
                "(MESH_REGISTRY_PRINCIPAL / MESH_REGISTRY_TOKEN), as the registry says"
            )
        else:  # refused for what was asked: the same command would be refused again
            later = "fix what the registry says (the group's name or `reads`) and start again"
        log.warning(
            "consumer group %s is not registered on product %s (%s); reading anyway, but the "
            "registry does not protect the fields it reads until it is: %s",
            group,
            product,
            exc,
            later,
        )
        return False
    return True


def set_compatibility(registry: ProductRegistry, product: DataProduct) -> None:
    """Set the compatibility level of the product's subject to the descriptor's."""
    _patiently(
        lambda: registry.set_compatibility(product.compatibility_level.value, product.value_subject)
    )


def register_descriptor(registry: ProductRegistry, product: DataProduct) -> None:
    """Create or replace the product's descriptor (its value schema must be registered)."""
    _patiently(lambda: registry.put_product(product))


class CheckingRegistry(ProductRegistry, Protocol):
    """A registry that can judge a descriptor without storing it (``POST
    /products/{name}/check``)."""

    def check_product(
        self, product: DataProduct | Mapping[str, Any], schema: str | None = None
    ) -> list[dict[str, Any]]: ...


def check_missing_descriptor(
    registry: CheckingRegistry,
    product: DataProduct,
    project: MeshProject,
    schema: str | Mapping[str, Any] | None = None,
) -> bool:
    """Before anything is written for ``project``'s own ``product``: True when the registry's
    catalog lacks it (register it with :func:`register_missing_descriptor` once its schema
    is). The registry judges the descriptor with its value schema (``schema``, else the
    project's ``.avsc``) first and stores nothing, so a descriptor its policies refuse raises
    :class:`ProductRejectedError` (the file and the policies) before a schema or a topic
    exists: a topic made with refused partitions could never shrink. Without a local schema,
    or with a registry that has no check (an older one), registration judges it later."""
    if _is_registered(registry, product.name):
        return False
    if schema is None:
        path = product.schema_path(project.root)
        if not path.is_file():
            return True  # the publisher takes the registry's latest, or says what is missing
        schema = load_schema_file(path)  # bad JSON is named with file:line, as it is later
    text = schema if isinstance(schema, str) else json.dumps(schema)
    try:
        problems = registry.check_product(product, text)
    except MeshError as exc:
        if getattr(exc, "status", None) in (404, 405):  # an older registry: no check route
            return True
        raise
    refused = [p for p in problems if p.get("severity", "error") == "error"]
    if refused:
        raise _rejection(
            ProductRejectedError(
                f"the registry refused the descriptor of {product.name}",
                violations=problems,
                status=422,
                error_code=42211,
            ),
            product,
            project,
        )
    return True


def register_missing_descriptor(
    registry: ProductRegistry, product: DataProduct, project: MeshProject
) -> bool:
    """Register the descriptor of ``project``'s own ``product`` unless the registry's catalog
    has it already (its value schema must be registered); True when it registered it.

    A governance refusal is a :class:`ProductRejectedError` naming the policy and the
    descriptor's file, since that is where the fix goes.
    """
    if _is_registered(registry, product.name):
        return False
    try:
        register_descriptor(registry, product)
    except ProductRejectedError as exc:
        raise _rejection(exc, product, project) from exc
    return True


def _rejection(
    exc: ProductRejectedError, product: DataProduct, project: MeshProject
) -> ProductRejectedError:
    file = _descriptor_file(project, product.name)
    refused = [v for v in exc.violations if v.get("severity", "error") == "error"]
    if not refused:
        return exc
    reasons = "; ".join(
        f"[{v.get('policy')}] {v.get('field')}: {v.get('message')}"
        if v.get("field")
        else f"[{v.get('policy')}] {v.get('message')}"
        for v in refused
    )
    return ProductRejectedError(
        f"{file}: the registry refused the descriptor of {product.name}: {reasons}; fix the "
        f"descriptor or its schema as shown (`mesh lint` checks the same policies) and "
        f"publish again",
        violations=exc.violations,
        status=exc.status,
        error_code=exc.error_code,
    )


def _descriptor_file(project: MeshProject, name: str) -> str:
    """The project-relative file holding descriptor ``name`` (its folder when not found)."""
    for path in descriptor_files(project.descriptors_dir):
        with contextlib.suppress(DescriptorError):
            if load_descriptor(path).name == name:
                return path.relative_to(project.root).as_posix()
    return project.descriptors_dir.relative_to(project.root).as_posix()


def _patiently(call: Callable[[], T], *, within: float = 60.0) -> T:
    """``call()``, retried after the registry's ``retry_after`` while it answers 429.

    Workers of several processors start at once and register as the same principal; the
    registry caps one client's heavy requests in flight and asks the others to retry.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except TooManyRequestsError as exc:
            if isinstance(exc, TooManyAuthFailuresError):
                raise  # a wrong credential does not get better by waiting
            if time.monotonic() + exc.retry_after > deadline:
                raise
            time.sleep(exc.retry_after)


def register_source_product(
    registry: ProductRegistry, product: DataProduct, project_root: Path
) -> int:
    """Register a product without inputs: its value schema, then its descriptor."""
    return register_product(registry, product, project_root, wait_for_inputs=0)


def registered_inputs(
    registry: ProductRegistry,
    product: DataProduct,
    *,
    wait: float = 120.0,
    poll_interval: float = 1.0,
    majors: Mapping[str, int] | None = None,
) -> tuple[tuple[DataProduct, ...], dict[str, str]]:
    """The inputs of ``product`` as the registry knows them: each one's descriptor and the
    latest schema of its value subject (name -> schema text), in the order of ``inputs``.

    Inputs are other domains' products: the processor's repository need not hold their YAML.
    Publishers register their products when they start, possibly at the same time as this
    processor, so a missing input is waited for up to ``wait`` seconds, then named. An input
    named in ``majors`` is read at that major (:func:`input_at_major`), not the current one.
    """
    majors = majors or {}
    deadline = time.monotonic() + wait
    told = False
    while True:
        found: dict[str, tuple[DataProduct, str]] = {}
        missing: list[str] = []
        for name in product.inputs:
            try:
                descriptor = resolve_product(name, registry=registry, root=None)
                if name in majors:
                    descriptor = input_at_major(descriptor, majors[name], product.name)
                latest = registry.get_latest(descriptor.value_subject)
            except ProductNotFoundError:
                missing.append(name)
                continue
            except SubjectNotFoundError:
                if name in majors:  # the product is registered; that major's subject is not
                    raise ConfigurationError(
                        f"{product.name}: input {name} is read at major {majors[name]}, but the "
                        f"registry at {registry.url} has no schema under "
                        f"{descriptor.value_subject} (that major was retired, or never "
                        f"published); read another major"
                    ) from None
                missing.append(name)
                continue
            found[name] = (descriptor, latest.schema)
        if not missing:
            break
        if not told and time.monotonic() < deadline:  # a wait of minutes is said at once
            told = True
            log.warning(
                "%s: input %s is not registered in the registry at %s yet%s; waiting up to "
                "%g s for its publisher",
                product.name,
                ", ".join(missing),
                registry.url,
                _registered_look_alikes(registry, missing),
                wait,
            )
        if time.monotonic() >= deadline:
            waited = f" after {wait:.0f} s" if wait > 0 else ""
            raise ProductNotFoundError(
                f"{product.name}: input {', '.join(missing)} is not registered (descriptor and "
                f"value schema) in the registry at {registry.url}{waited}"
                f"{_registered_look_alikes(registry, missing)}; publish it first "
                f"(`mesh products apply` in its domain's project, or start its publisher), "
                f"then start this processor",
                status=404,
                error_code=40404,
            )
        time.sleep(poll_interval)
    inputs = tuple(found[name][0] for name in product.inputs)
    return inputs, {name: found[name][1] for name in product.inputs}


def _registered_look_alikes(registry: ProductRegistry, missing: Sequence[str]) -> str:
    """`` (did you mean orders.order-placed?)`` for a missing input whose name is close to a
    registered product's: a typo in ``inputs`` otherwise looked like a publisher not started
    yet, and the worker waited its two minutes to say so (h55). Best effort: nothing when the
    registry cannot list its products."""
    try:
        known = [str(entry.get("name")) for entry in registry.list_products()]
    except MeshError:
        return ""
    guesses = [
        close[0]
        for name in missing
        if (close := difflib.get_close_matches(name, known, n=1, cutoff=0.75))
    ]
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


def input_at_major(descriptor: DataProduct, major: int, reader: str) -> DataProduct:
    """``descriptor`` (an input's current one) as of ``major``: its topic and subjects are
    that major's; a major past the current one is an error naming both."""
    if major > descriptor.version:
        raise ConfigurationError(
            f"{reader}: input {descriptor.name} is read at major {major}, but its current "
            f"major is {descriptor.version} ({descriptor.topic}); read a major from 1 to "
            f"{descriptor.version}"
        )
    return descriptor.model_copy(update={"version": major})


def _is_registered(registry: ProductRegistry, name: str) -> bool:
    try:
        registry.get_product(name)
    except ProductNotFoundError:
        return False
    return True


def find_product(products: Iterable[DataProduct], name: str) -> DataProduct:
    """The descriptor named ``name``; a clear error lists what exists."""
    catalogue = {product.name: product for product in products}
    try:
        return catalogue[name]
    except KeyError:
        raise ConfigurationError(
            f"no product {name!r} in the descriptors; known: {', '.join(sorted(catalogue))}"
        ) from None
