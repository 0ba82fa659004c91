"""The product face's domain core: descriptors, search, lineage and schema history.

A descriptor is accepted only when its value subject has a live schema and every input is
a registered product; then the governance validators (the hook of
:mod:`mesh_stream.registry.problems`) may still refuse it.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import ValidationError

from mesh_stream.descriptor import DataProduct, field_problem, topic_for
from mesh_stream.errors import (
    IncompatibleSchemaError,
    InvalidProductError,
    ProductInUseError,
    ProductNotFoundError,
    ProductRejectedError,
    ProductSubjectMissingError,
    SchemaRejectedError,
    UnknownInputProductError,
)
from mesh_stream.governance.evolution import EvolutionVerdict, judge_evolution
from mesh_stream.project import domain_name_problem
from mesh_stream.registry.problems import DescriptorProblem, DescriptorValidator, SchemaValidator
from mesh_stream.registry.service.consumers import registered_consumers, registration_document
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.registry.service.state import Record
from mesh_stream.schema.avro import AvroSchema, field_docs
from mesh_stream.settings import quoted_name

Direction = Literal["upstream", "downstream", "both"]


def unknown_product(name: str) -> ProductNotFoundError:
    """The 404 (40404) for a product the registry does not hold; a huge name is cut."""
    return ProductNotFoundError(f"Product {quoted_name(name)} not found.")


log = logging.getLogger(__name__)


def validate_descriptor(document: Any) -> DataProduct:
    """Parse a descriptor document; errors name each field path (error_code 42210)."""
    if not isinstance(document, Mapping):
        raise InvalidProductError("a product descriptor must be a JSON object of fields")
    try:
        product = DataProduct.model_validate(dict(document))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(descriptor)'}: {field_problem(err)}"
            for err in exc.errors()
        ]
        raise InvalidProductError("invalid descriptor: " + "; ".join(problems)) from exc
    # As lint judges them: a platform service's user, `anonymous` or a `mesh-` name in
    # `readers` would be granted the product at the broker (h32: the registry took them).
    problems = [
        f"readers.{index}: {problem}"
        for index, reader in enumerate(product.readers)
        if (problem := domain_name_problem(reader))
    ]
    if problems:
        raise InvalidProductError("invalid descriptor: " + "; ".join(problems))
    return product


class ProductCatalog:
    """Product descriptors over the same store and lock as the :class:`SchemaRegistry`."""

    def __init__(
        self, schemas: SchemaRegistry, validators: Sequence[DescriptorValidator] = ()
    ) -> None:
        self.schemas = schemas
        self.validators = tuple(validators)
        self.schema_validators = tuple(
            cast(SchemaValidator, v) for v in validators if isinstance(v, SchemaValidator)
        )
        # Consumer protection is the registry's compatibility contract: on with or without
        # the governance validators, and ahead of the subject's own level so a refusal
        # names the products that would break.
        schemas.consumer_gate = self.protect_consumers
        if self.schema_validators:
            schemas.gate = self.check_new_schema

    @property
    def _products(self) -> dict[str, dict[str, Any]]:
        return self.schemas.state.products

    # -- CatalogView (read-only, handed to validators) ------------------------------------

    def product_names(self) -> list[str]:
        return sorted(self._products)

    def get_product(self, name: str) -> DataProduct | None:
        entry = self._products.get(name)
        return None if entry is None else DataProduct.model_validate(entry["descriptor"])

    def latest_schema(self, subject: str) -> Mapping[str, Any] | None:
        latest = self.schemas.latest_schema_json(subject)
        return latest if isinstance(latest, Mapping) else None

    def consumer_groups(self, product: str) -> list[str]:
        return [
            f"{group.group} ({group.owner})"
            for group in registered_consumers(self.schemas.state, product)
        ]

    def product_of_subject(self, subject: str) -> DataProduct | None:
        """The product whose value subject is ``subject``, if a descriptor points there.

        Matched on the stored documents' name and version (the subject is derived from
        them), so only the match is parsed into a :class:`DataProduct`.
        """
        for name, entry in self._products.items():
            version = entry["descriptor"].get("version", 1)
            if f"{topic_for(name, version)}-value" == subject:
                return self.get_product(name)
        return None

    # -- the schema gate ------------------------------------------------------------------

    def protect_consumers(self, subject: str, parsed: AvroSchema) -> None:
        """Refuse ``parsed`` as the next version of ``subject`` (409) when it would break
        the products or registered consumer groups that read the subject's product
        (:meth:`evolution_verdict`); every register path runs this, admin included, before
        anything is stored."""
        product = self.product_of_subject(subject)
        if product is None:
            return
        verdict = self.evolution_verdict(product, parsed)
        if verdict is not None and verdict.refused:
            raise IncompatibleSchemaError(verdict.message())

    def check_new_schema(self, subject: str, parsed: AvroSchema) -> None:
        """Refuse ``parsed`` as the next version of ``subject`` when a schema validator
        finds an error (422): every register path runs this before anything is stored.

        Admin is gated too: governance judges the contract, not who sends it, and a version
        an admin slipped past the policies would refuse the next downstream descriptor.
        """
        product = self.product_of_subject(subject)
        problems = self.schema_problems(subject, product, parsed)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            whose = f"product '{product.name}'" if product is not None else "no product yet"
            raise SchemaRejectedError(
                f"schema refused by governance for subject '{subject}' ({whose}): "
                + "; ".join(f"{p.policy}: {p.message}" for p in errors),
                violations=[p.to_dict() for p in problems],
            )
        for problem in problems:
            log.warning(
                "registry: schema for subject %s accepted with a governance warning: %s: %s",
                subject,
                problem.policy,
                problem.message,
            )

    def schema_problems(
        self, subject: str, product: DataProduct | None, parsed: AvroSchema
    ) -> list[DescriptorProblem]:
        """What the schema validators find in ``parsed`` as a version of ``subject``."""
        schema = parsed.to_json()
        if not isinstance(schema, Mapping):  # a bare type: no record, field or doc to judge
            schema = {"type": schema}
        return [
            problem
            for validator in self.schema_validators
            for problem in validator.check_schema(subject, product, schema, self)
        ]

    def evolution_verdict(
        self, product: DataProduct, parsed: AvroSchema
    ) -> EvolutionVerdict | None:
        """What ``parsed`` as the next version of ``product``'s value subject would break for
        the products and registered consumer groups that read it (None when none does):
        checked against every live version at the consumer-protection level, and the fields
        their field_lineage or registered reads name (:mod:`mesh_stream.governance.evolution`)."""
        consumers = [
            found
            for name in self._direct_downstream(product.name)
            if (found := self.get_product(name)) is not None
        ]
        registered = [
            (v.version, self.schemas.parsed(v.schema_id))
            for v in self.schemas.live_versions(product.value_subject)
        ]
        groups = registered_consumers(self.schemas.state, product.name)
        return judge_evolution(product, consumers, parsed, registered, groups)

    def schema_warnings(self, name: str) -> list[dict[str, Any]]:
        """The governance warnings on the latest schema of product ``name`` (computed now, so
        every instance answers the same; a register answers only the Confluent body)."""
        product = self.get_product(name)
        if product is None or not self.schema_validators:
            return []
        live = self.schemas.live_versions(product.value_subject)
        if not live:
            return []
        parsed = self.schemas.parsed(live[-1].schema_id)
        problems = self.schema_problems(product.value_subject, product, parsed)
        return [p.to_dict() for p in problems if p.severity == "warning"]

    # -- reads --------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """The descriptor document plus what the registry knows about it under ``registry``."""
        entry = self._products.get(name)
        if entry is None:
            raise unknown_product(name)
        product = DataProduct.model_validate(entry["descriptor"])
        live = self.schemas.live_versions(product.value_subject)
        latest = live[-1] if live else None
        document = product.to_document()
        document["registry"] = {
            "topic": product.topic,
            "value_subject": product.value_subject,
            "schema_id": latest.schema_id if latest else None,
            "schema_version": latest.version if latest else None,
            "downstream": self._direct_downstream(name),
            "consumers": [
                registration_document(name, group, registration)
                for group, registration in sorted(
                    self.schemas.state.consumers.get(name, {}).items()
                )
            ],
            "updated_by": entry.get("updated_by"),
            "updated_at": entry.get("updated_at"),
        }
        return document

    def _direct_downstream(self, name: str) -> list[str]:
        return sorted(
            other
            for other, entry in self._products.items()
            if name in entry["descriptor"].get("inputs", [])
        )

    def _search_text(self, product: DataProduct) -> str:
        parts = [product.name, product.description, *product.tags]
        latest = self.schemas.latest_schema_json(product.value_subject)
        for path, doc in field_docs(latest):
            parts.append(path)
            if doc:
                parts.append(doc)
        return "\n".join(parts).casefold()

    def search(
        self,
        *,
        domain: str | None = None,
        tag: str | None = None,
        classification: str | None = None,
        kind: str | None = None,
        query: str | None = None,
    ) -> list[dict[str, Any]]:
        """Products matching every given filter; ``query`` is free text over names,
        descriptions, tags, field names and field docs (case-insensitive)."""
        found = []
        for name in self.product_names():
            product = DataProduct.model_validate(self._products[name]["descriptor"])
            if domain is not None and product.domain != domain:
                continue
            if tag is not None and tag not in product.tags:
                continue
            if classification is not None and product.classification.value != classification:
                continue
            if kind is not None and product.kind.value != kind:
                continue
            if query and not all(
                word in self._search_text(product) for word in query.casefold().split()
            ):
                continue
            found.append(self.describe(name))
        return found

    def lineage(self, name: str, direction: Direction = "both") -> dict[str, Any]:
        """Products upstream (inputs, recursively) and downstream (built from this one)."""
        if name not in self._products:
            raise unknown_product(name)
        edges: set[tuple[str, str]] = set()

        def walk(step: str) -> list[str]:
            seen: list[str] = []
            queue = deque([name])
            while queue:
                current = queue.popleft()
                if step == "up":
                    entry = self._products.get(current)
                    nexts = list(entry["descriptor"].get("inputs", [])) if entry else []
                    edges.update((n, current) for n in nexts)
                else:
                    nexts = self._direct_downstream(current)
                    edges.update((current, n) for n in nexts)
                for item in nexts:
                    if item not in seen and item != name:
                        seen.append(item)
                        queue.append(item)
            return seen

        upstream = walk("up") if direction in ("upstream", "both") else []
        downstream = walk("down") if direction in ("downstream", "both") else []
        return {
            "product": name,
            "direction": direction,
            "upstream": upstream,
            "downstream": downstream,
            "edges": [{"from": a, "to": b} for a, b in sorted(edges)],
        }

    def schema_history(self, name: str) -> list[dict[str, Any]]:
        """Every live version of the product's value subjects, one major after the other,
        oldest first within each (each entry names its subject): the earlier majors' too,
        which records still on their topics were written with and their readers still read."""
        product = self.get_product(name)
        if product is None:
            raise unknown_product(name)
        subjects = [
            product.model_copy(update={"version": major}).value_subject
            for major in range(1, product.version + 1)
        ]
        return [v.to_dict() for s in subjects for v in self.schemas.live_versions(s)]

    # -- writes -------------------------------------------------------------------------

    def put(self, document: Any, *, principal: str, path_name: str | None = None) -> dict[str, Any]:
        """Create or replace a descriptor; returns it as :meth:`describe` does, plus warnings."""
        product = validate_descriptor(document)
        if path_name is not None and path_name != product.name:
            raise InvalidProductError(
                f"the URL names product '{path_name}' but the descriptor's name is "
                f"'{product.name}'",
                status=422,
                error_code=42214,
            )
        # each input stored once, in order, as a group's reads are (lint locates findings
        # by the file's own indices, so the descriptor model keeps them as written)
        product = product.model_copy(update={"inputs": tuple(dict.fromkeys(product.inputs))})
        with self.schemas.write_lock:
            latest = self.latest_schema(product.value_subject)
            if latest is None:
                raise ProductSubjectMissingError(
                    f"product '{product.name}': its value subject '{product.value_subject}' has "
                    f"no registered schema; register {product.schema_file} under that subject "
                    f"first (POST /subjects/{product.value_subject}/versions)"
                )
            if product.name in product.inputs:
                raise InvalidProductError(
                    f"product '{product.name}' lists itself in inputs",
                    status=422,
                    error_code=42210,
                )
            missing = [i for i in product.inputs if i not in self._products]
            if missing:
                raise UnknownInputProductError(
                    f"product '{product.name}': inputs {', '.join(missing)} are not registered "
                    f"products; register them first"
                )
            problems = self._judged(product, latest)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise ProductRejectedError(
                    f"product '{product.name}' violates governance policies: "
                    + "; ".join(f"{p.policy}: {p.message}" for p in errors),
                    violations=[p.to_dict() for p in problems],
                )
            self.schemas.store.append(
                [
                    Record(
                        ("product", product.name),
                        {
                            "descriptor": product.to_document(),
                            "updated_by": principal,
                            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        },
                    )
                ]
            )
        result = self.describe(product.name)
        result["registry"]["warnings"] = [p.to_dict() for p in problems]
        return result

    def _judged(self, product: DataProduct, latest: Mapping[str, Any]) -> list[DescriptorProblem]:
        """The lineage checks (422) and what the governance validators find, for
        :meth:`put` and :meth:`check` alike."""
        cycle = self._cycle_through(product)
        if cycle:
            raise InvalidProductError(
                f"product '{product.name}': inputs would make a lineage cycle {' -> '.join(cycle)}",
                status=422,
                error_code=42210,
            )
        problems: list[DescriptorProblem] = []
        for validator in self.validators:
            problems.extend(validator(product, latest, self))
        return problems

    def check(
        self, document: Any, *, path_name: str, schema: str | None = None
    ) -> list[DescriptorProblem]:
        """What :meth:`put` would find in ``document``, storing nothing: ``mesh products
        plan`` asks before ``apply`` writes a topic or a schema, so a descriptor the
        registry's policies refuse is refused before anything is written. ``schema`` is the
        value schema the descriptor comes with (the project's ``.avsc``), judged instead of
        the subject's latest. An input not registered yet is not refused as :meth:`put`
        refuses it (42213), but the governance policies still judge the lineage against the
        catalog, so the plan asks only once a product's inputs are registered."""
        product = validate_descriptor(document)
        if path_name != product.name:
            raise InvalidProductError(
                f"the URL names product '{path_name}' but the descriptor's name is "
                f"'{product.name}'",
                status=422,
                error_code=42214,
            )
        latest: Mapping[str, Any] | None
        if schema is not None:
            try:
                parsed = json.loads(schema)
            except ValueError as exc:
                raise InvalidProductError(
                    f"schema: not JSON ({exc})", status=422, error_code=42201
                ) from None
            latest = parsed if isinstance(parsed, Mapping) else None
        else:
            latest = self.latest_schema(product.value_subject)
        if latest is None:
            raise ProductSubjectMissingError(
                f"product '{product.name}': give its value schema (schema) or register it under "
                f"'{product.value_subject}' first"
            )
        if product.name in product.inputs:
            raise InvalidProductError(
                f"product '{product.name}' lists itself in inputs", status=422, error_code=42210
            )
        with self.schemas.write_lock:  # the same view of the catalog put would judge with
            return self._judged(product, latest)

    def _cycle_through(self, product: DataProduct) -> list[str]:
        """A path product -> input -> ... -> product through registered inputs, if any."""
        paths = deque([[product.name, i] for i in product.inputs])
        seen: set[str] = set()
        while paths:
            path = paths.popleft()
            current = path[-1]
            if current == product.name:
                return path
            if current in seen:
                continue
            seen.add(current)
            entry = self._products.get(current)
            for item in entry["descriptor"].get("inputs", []) if entry else []:
                paths.append([*path, item])
        return []

    def delete(self, name: str) -> None:
        with self.schemas.write_lock:
            if name not in self._products:
                raise unknown_product(name)
            dependents = self._direct_downstream(name)
            if dependents:
                raise ProductInUseError(
                    f"product '{name}' cannot be deleted: {', '.join(dependents)} "
                    f"list it in their inputs; delete or change those first"
                )
            groups = sorted(self.schemas.state.consumers.get(name, {}))
            if groups:
                raise ProductInUseError(
                    f"product '{name}' cannot be deleted: consumer groups {', '.join(groups)} "
                    f"are registered on it; unregister them first (DELETE "
                    f"/products/{name}/consumers/<group>)"
                )
            self.schemas.store.append([Record(("product", name), None)])
