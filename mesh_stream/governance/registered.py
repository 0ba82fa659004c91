"""A local schema against what the registry holds: the verdict the registry would give.

`mesh lint --against-registry` and `mesh products plan` ask the registry (read-only) for the
registered versions of a product's value subject, its compatibility level, and the products
and registered consumer groups that read it, then judge the local `.avsc` with the same code
the registry runs on register (:func:`mesh_stream.schema.avro.incompatibilities` at the
subject's level, and :func:`mesh_stream.governance.evolution.judge_evolution` for its
consumers), so the answer before applying is the answer at applying.

`mesh lint` also looks inputs from other repositories up in the registry
(:class:`RegistryLookup`); :func:`unavailable` words, for both, why a registry gave no usable
answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mesh_stream.descriptor import (
    Compatibility,
    DataProduct,
    descriptor_files,
    load_descriptor,
)
from mesh_stream.errors import (
    AuthError,
    ConfigurationError,
    MeshError,
    ProductNotFoundError,
    RegistryError,
    RegistryUnavailableError,
    SchemaError,
    SubjectNotFoundError,
)
from mesh_stream.files import read_regular_text
from mesh_stream.governance import avro_walk, locate
from mesh_stream.governance.catalog import Catalog
from mesh_stream.governance.evolution import (
    VIA_REGISTRATION,
    EvolutionVerdict,
    LineageBreak,
    RegisteredConsumer,
    judge_evolution,
)
from mesh_stream.governance.model import Severity, Violation
from mesh_stream.governance.policies import BUILTIN_POLICIES, unmarked_pii
from mesh_stream.governance.repository import logical_type_warnings_off
from mesh_stream.project import MeshProject
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.avro import (
    AvroSchema,
    Incompatibility,
    incompatibilities,
    parse_schema,
)

SUBJECT_POLICY = "schema-compatibility"
"""The name a subject-level incompatibility is reported under (the registry's 409)."""
CONSUMER_POLICY = "compatibility-with-consumers"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Breach:
    """One reason the registry would refuse a local schema: policy, field, what, why, fix."""

    policy: str
    field: str | None
    message: str
    why: str
    fix: str


@dataclass(frozen=True)
class RegisteredVerdict:
    """What the registry would answer to a local schema as the next version of a subject."""

    subject: str
    level: str
    """The subject's own level (or the global one) in force at the registry."""
    versions: tuple[int, ...]
    subject_problems: tuple[Incompatibility, ...] = ()
    consumers: EvolutionVerdict | None = None
    unchanged: bool = False
    """The local schema is the latest registered version (same wire shape)."""
    dropped_pii: tuple[Breach, ...] = ()
    """Fields the latest version marks PII that the local schema keeps without the mark
    (the registry refuses such a version; a mark is no part of the wire shape)."""

    @property
    def refused(self) -> bool:
        return (
            bool(self.subject_problems)
            or bool(self.dropped_pii)
            or (self.consumers is not None and self.consumers.refused)
        )

    def breaches(self) -> list[Breach]:
        """Each reason the registry would refuse the schema, consumers first."""
        found: list[Breach] = []
        verdict = self.consumers
        if verdict is not None and verdict.refused:
            who = ", ".join(verdict.broken_consumers)
            for item in verdict.lineage:
                found.append(
                    Breach(
                        CONSUMER_POLICY,
                        item.field,
                        f"{self.subject}: {item}",
                        _why_field(item),
                        item.fix(self.subject),
                    )
                )
            for problem in verdict.problems:
                found.append(
                    Breach(
                        CONSUMER_POLICY,
                        problem.field,
                        f"{self.subject}: {_what(problem)} breaks {who} "
                        f"(checked at {verdict.level.value})",
                        problem.why,
                        problem.fix,
                    )
                )
        for problem in self.subject_problems:
            found.append(
                Breach(
                    SUBJECT_POLICY,
                    problem.field,
                    f"{self.subject}: {_what(problem)} breaks the subject's level {self.level}",
                    problem.why,
                    problem.fix,
                )
            )
        return [*found, *self.dropped_pii]


def _why_field(item: LineageBreak) -> str:
    if item.via == VIA_REGISTRATION:
        return (
            f"{item.consumer} registered that it reads this field: removing or retyping it "
            f"breaks that application (e.g. a KeyError), whatever compatibility level is "
            f"declared"
        )
    return (
        f"{item.consumer} computes its fields from this one (field_lineage): removing or "
        f"retyping it breaks its processor (e.g. a KeyError crash-loop), whatever "
        f"compatibility level is declared"
    )


def _what(problem: Incompatibility) -> str:
    where = f"field {problem.field}" if problem.field else "the record"
    return f"{where} {problem.change}"


def registered_verdict(
    registry: RegistryClient, product: DataProduct, schema_text: str
) -> RegisteredVerdict | None:
    """The registry's verdict on ``schema_text`` as the next version of ``product``'s value
    subject; None when the subject has no version yet (nothing to be compatible with).

    Raises :class:`ConfigurationError` (one line, what to fix) when the registry cannot be
    reached, does not answer in time or refuses the credential, and :class:`SchemaError`
    naming the version, subject, product and registry when a registered version is not Avro:
    a verdict that was never asked must not pass for a clean one.
    """
    subject = product.value_subject
    with registry_errors(registry):
        texts = _live_texts(registry, product)
        registered = _parsed(registry, product, texts)
        if not registered:
            return None
        level = registry.get_compatibility(subject)
        consumers = _consumers(registry, product.name)
        groups = registered_groups(registry, product.name)
    versions = tuple(n for n, _ in registered)
    candidate = parse_schema(schema_text, strict=False)
    dropped = _dropped_pii(texts[-1][1], schema_text)
    if candidate.canonical_form == registered[-1][1].canonical_form:
        return RegisteredVerdict(subject, level, versions, unchanged=True, dropped_pii=dropped)
    return RegisteredVerdict(
        subject,
        level,
        versions,
        dropped_pii=dropped,
        subject_problems=tuple(
            incompatibilities(candidate, registered, Compatibility(level), subject=subject)
        ),
        consumers=judge_evolution(product, consumers, candidate, registered, groups),
    )


def _live_versions(registry: RegistryClient, product: DataProduct) -> list[tuple[int, AvroSchema]]:
    """The live versions of the product's value subject, oldest first: the product's schema
    history when the product is registered, else the subject's latest version."""
    return _parsed(registry, product, _live_texts(registry, product))


def _live_texts(registry: RegistryClient, product: DataProduct) -> list[tuple[int, str]]:
    """:func:`_live_versions` as the registry holds them (each version's schema text)."""
    subject = product.value_subject
    try:
        history = registry.product_schemas(product.name)
    except ProductNotFoundError:
        try:
            with _held(registry, product, "the latest version"):  # the client reads it too
                latest = registry.get_latest(subject)
        except SubjectNotFoundError:
            return []
        return [(latest.version, latest.schema)]
    return [
        (int(item["version"]), str(item["schema"]))
        for item in history
        if item.get("subject", subject) == subject
    ]


def _parsed(
    registry: RegistryClient, product: DataProduct, texts: list[tuple[int, str]]
) -> list[tuple[int, AvroSchema]]:
    found = []
    for version, text in texts:
        with _held(registry, product, f"version {version}"):
            found.append((version, parse_schema(text, strict=False)))
    return found


def _dropped_pii(latest_text: str, schema_text: str) -> tuple[Breach, ...]:
    """The registry's refusal of a version dropping a PII mark (``unmarked_pii``), as
    breaches of pii-classification."""
    try:
        previous, schema = json.loads(latest_text), json.loads(schema_text)
    except ValueError:
        return ()
    if not isinstance(previous, dict) or not isinstance(schema, dict):
        return ()
    policy = BUILTIN_POLICIES["pii-classification"]
    root = f"{avro_walk.root_name(schema)}."
    return tuple(
        Breach(
            policy.name,
            (finding.field or "").removeprefix(root) or None,  # the field's path in the record
            finding.message,
            policy.why,
            policy.fix,
        )
        for finding in unmarked_pii(previous, schema)
    )


@contextmanager
def _held(registry: RegistryClient, product: DataProduct, which: str) -> Iterator[None]:
    """A registered version that is not Avro named by where it is held (``which`` version,
    subject, product, registry), or the author would look for the fault in their `.avsc`."""
    try:
        yield
    except SchemaError as exc:
        raise SchemaError(
            f"{which} of subject {product.value_subject} (product {product.name}) held by the "
            f"registry at {registry.url} is not usable: {exc}; no local schema can be judged "
            f"against it until the registry's operator repairs or deletes that version"
        ) from exc


def _consumers(registry: RegistryClient, name: str) -> list[DataProduct]:
    """The registered products that read product ``name`` (its registered downstream)."""
    try:
        document = registry.get_product(name)
    except ProductNotFoundError:
        return []
    found = []
    for other in document.get("registry", {}).get("downstream", []):
        try:
            found.append(DataProduct.model_validate(_descriptor_only(registry.get_product(other))))
        except (ProductNotFoundError, ValueError):
            continue
    return found


def registered_groups(registry: RegistryClient, name: str) -> list[RegisteredConsumer]:
    """The consumer groups registered on product ``name`` (none when it is not registered)."""
    try:
        listing = registry.consumers(name)
    except RegistryError as exc:  # not a product, or a registry without consumer routes
        if exc.status == 404:
            return []
        raise
    return [
        RegisteredConsumer(
            str(item["group"]), _owner(item.get("owner")), tuple(item.get("reads") or ())
        )
        for item in listing
    ]


NO_OWNER = "not recorded"
"""How a registration without an owner is named ("consumer group 'billing' (owner not
recorded)"): the registry may hold one made before owners were recorded, or another
registry may leave the field out."""


def _owner(owner: object) -> str:
    return NO_OWNER if owner is None or not str(owner).strip() else str(owner)


def _descriptor_only(document: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in document.items() if k != "registry"}


def not_a_registry(exc: RegistryError) -> bool:
    """Whether what answered at the registry URL is no mesh-stream registry (a web server, a
    Confluent registry without the mesh's routes): a wrong URL, not a registry's refusal."""
    return exc.answered_status is not None


def unavailable(exc: RegistryError) -> tuple[str, str]:
    """Why the registry gave no usable answer, as the rest of "the registry at URL ...", and
    what to do: it never answered a connection it accepted (a read timeout), no connection
    could be made, what answered is not a registry, or it answered that it cannot serve now
    (HTTP 503). Each needs another fix."""
    if not_a_registry(exc):
        return (
            f"answered {exc.answered_status} with {exc.answered_type}: not a mesh-stream registry",
            "set MESH_REGISTRY_URL (or --registry-url) to the URL `mesh registry serve` prints",
        )
    if isinstance(exc, RegistryUnavailableError) and exc.why == "unanswered":
        return (
            f"accepted the connection but {_unanswered(exc)}",
            "it is up but busy or stuck (a slow Kafka under it?), or MESH_REGISTRY_URL points "
            "at something else that listens; check it and run again",
        )
    if isinstance(exc, RegistryUnavailableError) and exc.why == "unreachable":
        return (
            "is unreachable",
            "start it (`mesh registry serve`) or set MESH_REGISTRY_URL to the mesh's registry",
        )
    return (
        f"answered that it cannot serve now ({exc})",
        "run again once it is back (its log says why)",
    )


def _unanswered(exc: RegistryUnavailableError) -> str:
    """Which call went unanswered and how long it waited, from the client's fields."""
    if exc.request is None:
        return "did not answer in time"
    said = f"did not answer {exc.request}"
    if exc.waited is not None:
        said += f" within {exc.waited:g} s"
    if exc.attempts > 1:
        said += f" ({exc.attempts} attempts)"
    return said


@contextmanager
def registry_errors(registry: RegistryClient) -> Iterator[None]:
    """Turn a registry that gives no answer, is no registry or refuses the credential into
    one clear line: a verdict that was never asked must not pass for a clean one."""
    try:
        yield
    except RegistryError as exc:
        if isinstance(exc, AuthError):
            raise ConfigurationError(
                f"cannot compare with the registry at {registry.url}: it refused the "
                f"credential ({exc}); set MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN to "
                f"a credential that may read it, or drop --against-registry"
            ) from exc
        if not (isinstance(exc, RegistryUnavailableError) or not_a_registry(exc)):
            raise
        said, fix = unavailable(exc)
        raise ConfigurationError(
            f"cannot compare with the registry at {registry.url}: it {said}; {fix}, or drop "
            f"--against-registry"
        ) from exc


class RememberingCatalog(Catalog, Protocol):
    """A catalog of the registry's products that stops asking once the registry could not be
    reached or never answered, and keeps that error
    (:class:`mesh_stream.products_plan.RegistryCatalog`)."""

    unreachable: RegistryUnavailableError | None


class RegistryLookup:
    """The registry's products as `mesh lint` looks inputs from other repositories up in
    them: a registry that cannot be asked (it never answers, cannot be reached, or what
    answers at its URL is no registry) leaves those inputs unverified (``known`` answers
    None) and the lint local, instead of failing it; :meth:`unverified` says what happened.
    """

    def __init__(self, inner: RememberingCatalog, url: str) -> None:
        self.inner = inner
        self.url = url
        self._foreign: RegistryError | None = None

    @property
    def failure(self) -> RegistryError | None:
        """The error that made the lookups stop, if one did."""
        return self.inner.unreachable or self._foreign

    def unverified(self) -> str | None:
        """What the registry did and the fix, as the rest of "not verified: ..."."""
        if self.failure is None:
            return None
        said, fix = unavailable(self.failure)
        return f"the registry at {self.url} {said}; {fix}"

    def _ask(self, question: Callable[[], _T], otherwise: _T) -> _T:
        if self._foreign is not None:
            return otherwise
        try:
            return question()
        except RegistryError as exc:
            if not not_a_registry(exc):
                raise
            self._foreign = exc
            return otherwise

    def known(self, name: str) -> bool | None:
        return self._ask(lambda: self.inner.known(name), None)

    def product(self, name: str) -> DataProduct | None:
        return self._ask(lambda: self.inner.product(name), None)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        return self._ask(lambda: self.inner.schema(name), None)

    def downstream(self, name: str) -> list[str]:
        return self._ask(lambda: self.inner.downstream(name), [])

    def consumer_groups(self, name: str) -> list[str]:
        return self._ask(lambda: self.inner.consumer_groups(name), [])


def lint_against_registry(project: MeshProject, registry: RegistryClient) -> list[Violation]:
    """A violation (error, at the local `.avsc`'s field line) for each reason the registry
    would refuse a local schema as the next version of its product's value subject.

    Descriptors or schemas that do not load are skipped: the lint reports those already.
    """
    violations: list[Violation] = []
    with registry_errors(registry), logical_type_warnings_off():
        for path in descriptor_files(project.descriptors_dir):
            try:
                product = load_descriptor(path)
                schema_path = project.schema_path(product)
                text = read_regular_text(schema_path)
                parse_schema(text, strict=False)
            except (MeshError, OSError, UnicodeDecodeError):
                continue
            verdict = registered_verdict(registry, product, text)
            if verdict is None:
                continue
            display = _display(schema_path, project.root)
            for breach in verdict.breaches():
                line = field_line(text, breach.field) if breach.field else None
                violations.append(
                    Violation(
                        policy=breach.policy,
                        severity=Severity.ERROR,
                        message=breach.message,
                        why=breach.why,
                        fix=breach.fix,
                        product=product.name,
                        field=breach.field,
                        file=display,
                        line=line or 1,
                    )
                )
    return violations


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def field_line(schema_text: str, path: str) -> int | None:
    """The line of field ``path`` in the `.avsc` text (None when it is not there, e.g. a
    removed field)."""
    try:
        document = json.loads(schema_text)
    except ValueError:
        return None
    spot = next((s for s in avro_walk.fields(document) if s.path == path), None)
    return None if spot is None else locate.line_of(locate.compose(schema_text), spot.loc)


def level_problems(
    registry: RegistryClient, product: DataProduct, schema_text: str, level: str
) -> list[Incompatibility]:
    """What the subject's own ``level`` alone refuses in ``schema_text`` (consumer protection
    aside): the registry's compatibility answer folds both together."""
    registered = _live_versions(registry, product)
    if not registered:
        return []
    candidate = parse_schema(schema_text, strict=False)
    subject = product.value_subject
    return list(incompatibilities(candidate, registered, Compatibility(level), subject=subject))


def consumer_verdict(
    registry: RegistryClient, product: DataProduct, schema_text: str
) -> EvolutionVerdict | None:
    """Consumer protection alone (`mesh products plan` asks the registry for the subject's
    own verdict): None when no registered product or consumer group reads ``product`` or
    its subject has no version yet."""
    consumers = _consumers(registry, product.name)
    groups = registered_groups(registry, product.name)
    if not consumers and not groups:
        return None
    registered = _live_versions(registry, product)
    if not registered:
        return None
    candidate = parse_schema(schema_text, strict=False)
    return judge_evolution(product, consumers, candidate, registered, groups)
