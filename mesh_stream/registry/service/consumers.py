"""Registered consumers: consumer groups (applications, not products) that read a product.

A team whose application reads a product registers its consumer group on it, with the
top-level fields it reads. From then on the registry protects it as it protects downstream
products (:mod:`mesh_stream.governance.evolution`): the product evolves under at least
FULL_TRANSITIVE unless its descriptor gives a ``compatibility_reason``, and a new version
that removes or retypes a field the group ``reads`` is refused (409) naming the group and
its owner. No HTTP in here; the routes are :mod:`.routes.consumers`.

The rules, in one place:

* Anyone with a credential may register a group on any product (reading is open), under a
  group name its domain owns (the names the broker ACLs grant it, see docs/how-to/acls.md):
  ``<domain>.…`` or ``<domain>-…``, or a processor's ``mesh-<product>`` /
  ``mesh-<product>-rekey`` for a product of its domain. Admin registers any name. So no
  domain can squat another's group and block it.
* The registration belongs to the caller's domain; admin overwriting one keeps its owner, a
  new one by admin is owned by ``admin``, and without authentication (``--open-writes``) by
  ``anonymous`` (a name no domain may have, :func:`mesh_stream.project.domain_name_problem`).
* Only the owner domain, or admin, may overwrite a registration; those, and the domain that
  owns the product, may delete it (so the product's owner can always clear its product).
* ``reads`` names top-level fields of the product's latest schema; ``contact`` and
  ``description`` are free text for the product's owners.
* A product with registered consumers cannot be deleted until they are unregistered.

Stored as ``["consumer", product, group]`` records in the registry log (see :mod:`.state`),
so every instance serves them and they survive restarts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mesh_stream.descriptor import PRODUCT_NAME, Classification, DataProduct
from mesh_stream.errors import (
    ConsumerNotFoundError,
    InvalidConsumerError,
    PermissionDeniedError,
    ProductNotFoundError,
)
from mesh_stream.governance.evolution import RegisteredConsumer
from mesh_stream.project import ANONYMOUS_PRINCIPAL
from mesh_stream.registry.service.auth import ADMIN, domain_of
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.registry.service.state import Record, RegistryState
from mesh_stream.settings import quoted_name

#: The owner of registrations made while the registry runs without authentication.
ANONYMOUS = ANONYMOUS_PRINCIPAL
#: A consumer group name: what Kafka allows in topic names (letters, digits, ``.``, ``_``,
#: ``-``), so it is one URL segment; Kafka's own limit on length.
GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
FIELDS = ("reads", "contact", "description")
MAX_TEXT = {"contact": 200, "description": 2000}


def _invalid(message: str) -> InvalidConsumerError:
    return InvalidConsumerError(message, status=422, error_code=42219)


def check_group(group: str) -> str:
    """``group`` when it can be registered, else a 422 naming what is wrong."""
    if not GROUP_NAME.fullmatch(group) or group in (".", ".."):
        shown = repr(group[:60] + ("…" if len(group) > 60 else ""))
        raise _invalid(
            f"group: {shown} cannot be registered: a consumer group name is 1 to 249 letters, "
            f"digits, '.', '_' or '-' (not '.' or '..' alone), e.g. billing-service"
        )
    return group


#: A processor's groups: ``mesh-<product>`` (its app id) and ``mesh-<product>-rekey`` (its
#: re-key stage, :func:`mesh_stream.processing.names.sources_group`). A product name's parts
#: may hold ``-``, so both are ``mesh-`` and a product name.
PROCESSOR_GROUP_PREFIX = "mesh-"


def group_name_problem(group: str, principal: str) -> str | None:
    """Why domain ``principal`` may not register a group named ``group`` (None: it may).

    A domain owns ``<domain>.…`` and ``<domain>-…`` without a dot (``orders-eu.x`` is domain
    orders-eu's), and the groups of the processors of its own products,
    ``mesh-<domain>.<product>`` with or without ``-rekey``: the names the broker ACLs grant
    it. Admin owns every name.
    """
    if principal == ADMIN:
        return None
    if group.startswith(f"{principal}."):
        return None
    # <d>-… without a dot, or whose part before the first dot is <d>'s own: ``orders-eu.x``
    # is domain orders-eu's `<d>.…` name, which orders must not take
    if group.startswith(f"{principal}-") and "." not in group:
        return None
    processed = group.removeprefix(PROCESSOR_GROUP_PREFIX)
    found = PRODUCT_NAME.match(processed) if processed != group else None
    if found is not None and found.group("domain") == principal:
        return None
    shown = group[:60] + ("…" if len(group) > 60 else "")
    return (
        f"principal '{principal}' may not register consumer group '{shown}': a domain "
        f"registers only groups named after it, so no domain can take another's name; name "
        f"your group `{principal}.…` or `{principal}-…` without a dot (or, for a processor of "
        f"your product P, `mesh-P` / `mesh-P-rekey`)"
    )


def _check_may_read(product: DataProduct, principal: str) -> None:
    """A domain registers a group only on a product it may read: a ``pii`` product is its
    own domain's and its ``readers``' (as the ACL plan grants at the broker). Another
    domain's registration would hold the owner to keeping the fields it names."""
    if (
        product.classification is not Classification.PII
        or principal in (ADMIN, product.domain)
        or principal in product.readers
    ):
        return
    readers = ", ".join(product.readers) or "none"
    raise PermissionDeniedError(
        f"principal '{principal}' may not register a consumer group on product "
        f"'{product.name}': it is classified pii, and only domain '{product.domain}' and its "
        f"readers ({readers}) may read it, at the broker too; ask its owners to add "
        f"'{principal}' to `readers` in its descriptor"
    )


def registered_consumers(state: RegistryState, product: str) -> list[RegisteredConsumer]:
    """The consumer groups registered on ``product``, by group name (for the schema gate)."""
    groups = state.consumers.get(product, {})
    return [
        RegisteredConsumer(group, str(entry.get("owner", "")), tuple(entry.get("reads") or ()))
        for group, entry in sorted(groups.items())
    ]


def registration_document(product: str, group: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A registration as the API answers it."""
    return {
        "product": product,
        "group": group,
        "owner": entry.get("owner"),
        "reads": list(entry.get("reads") or ()),
        "contact": entry.get("contact"),
        "description": entry.get("description"),
        "registered_by": entry.get("registered_by"),
        "registered_at": entry.get("registered_at"),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ConsumerRegistrations:
    """Register, list and unregister consumer groups over the registry's store and lock."""

    def __init__(self, schemas: SchemaRegistry) -> None:
        self.schemas = schemas

    @property
    def _state(self) -> RegistryState:
        return self.schemas.state

    def _product(self, name: str) -> DataProduct:
        entry = self._state.products.get(name)
        if entry is None:
            raise ProductNotFoundError(
                f"Product {quoted_name(name)} not found; consumers register on a registered "
                f"product (`mesh products list` shows them)"
            )
        return DataProduct.model_validate(entry["descriptor"])

    def listing(self, product: str) -> list[dict[str, Any]]:
        """Every group registered on ``product``, by name (404 for an unknown product)."""
        self._product(product)
        groups = self._state.consumers.get(product, {})
        return [registration_document(product, g, e) for g, e in sorted(groups.items())]

    def register(
        self, product: str, group: str, document: Any, *, principal: str, authenticated: bool
    ) -> dict[str, Any]:
        """Create or replace the registration of ``group`` on ``product``; returns it.

        ``principal`` is the caller (``admin`` for everyone when not ``authenticated``).
        """
        check_group(group)
        fields = self._parse(document)
        with self.schemas.write_lock:
            found = self._product(product)
            if authenticated:
                _check_may_read(found, principal)
            reads = self._check_reads(found, fields.get("reads", []))
            existing = self._state.consumers.get(product, {}).get(group)
            owner = self._owner(product, group, existing, principal, authenticated)
            value: dict[str, Any] = {"owner": owner, "reads": reads}
            value.update({k: fields[k] for k in ("contact", "description") if fields.get(k)})
            value.update({"registered_by": principal, "registered_at": _now()})
            self.schemas.store.append([Record(("consumer", product, group), value)])
        return registration_document(product, group, value)

    def unregister(self, product: str, group: str, *, principal: str) -> None:
        """Remove the registration (its owner domain, the product's domain or admin)."""
        check_group(group)
        with self.schemas.write_lock:
            self._product(product)
            existing = self._state.consumers.get(product, {}).get(group)
            if existing is None:
                known = sorted(self._state.consumers.get(product, {}))
                raise ConsumerNotFoundError(
                    f"no consumer group '{group[:60]}' is registered on product '{product}' "
                    f"(registered: {', '.join(known) or 'none'}; GET "
                    f"/products/{product}/consumers lists them)"
                )
            if principal != domain_of(product):  # a product's owner clears its product
                self._check_owner(product, group, existing, principal, "unregister")
            self.schemas.store.append([Record(("consumer", product, group), None)])

    # -- rules ---------------------------------------------------------------------------

    def _owner(
        self,
        product: str,
        group: str,
        existing: Mapping[str, Any] | None,
        principal: str,
        authenticated: bool,
    ) -> str:
        # a registration the caller owns already (made before this rule) stays its own
        if authenticated and (existing is None or existing.get("owner") != principal):
            problem = group_name_problem(group, principal)
            if problem is not None:
                raise PermissionDeniedError(problem)
        if existing is not None:
            self._check_owner(product, group, existing, principal, "overwrite")
            return str(existing.get("owner"))
        return principal if authenticated else ANONYMOUS

    @staticmethod
    def _check_owner(
        product: str, group: str, existing: Mapping[str, Any], principal: str, action: str
    ) -> None:
        owner = existing.get("owner")
        if principal in (ADMIN, owner):
            return
        domain = domain_of(product)
        removing = action != "overwrite"
        if owner == ANONYMOUS:
            raise PermissionDeniedError(
                f"principal '{principal}' may not {action} consumer group '{group}' on product "
                f"'{product}': it was registered while the registry ran without "
                f"authentication (--open-writes), so no domain owns it; an admin token "
                + (f"or the product's domain '{domain}' may remove it" if removing else "")
                + ("" if removing else "may change it")
            )
        raise PermissionDeniedError(
            f"principal '{principal}' may not {action} consumer group '{group}' on product "
            f"'{product}': it was registered by domain '{owner}', and only that domain"
            + (f", the product's domain '{domain}'" if removing else "")
            + " or admin may change it; register your application under a group of its own"
        )

    @staticmethod
    def _parse(document: Any) -> dict[str, Any]:
        """The body's fields, each checked; an absent or null body registers no fields."""
        if document is None:
            return {}
        if not isinstance(document, Mapping):
            raise _invalid(
                f"the body must be a JSON object with any of {', '.join(FIELDS)} (e.g. "
                f'{{"reads": ["order_id"]}}), not {type(document).__name__}'
            )
        unknown = sorted(str(k) for k in document if k not in FIELDS)
        if unknown:
            raise _invalid(
                f"{unknown[0][:60]}: not a field of a consumer registration; the fields are "
                f"{', '.join(FIELDS)}"
            )
        parsed: dict[str, Any] = {}
        reads = document.get("reads")
        if reads is not None:
            if not isinstance(reads, list) or not all(isinstance(r, str) for r in reads):
                raise _invalid(
                    'reads: must be a list of top-level field names, e.g. ["order_id", "total"]'
                )
            parsed["reads"] = reads
        for name, limit in MAX_TEXT.items():
            text = document.get(name)
            if text is None:
                continue
            if not isinstance(text, str):
                raise _invalid(f"{name}: must be text, not {type(text).__name__}")
            if len(text) > limit:
                raise _invalid(f"{name}: longer than {limit} characters ({len(text)})")
            allowed = "\n\t" if name == "description" else ""
            control = next(
                (c for c in text if unicodedata.category(c) == "Cc" and c not in allowed), None
            )
            if control is not None:  # an escape sequence would reach every reader's terminal
                raise _invalid(
                    f"{name}: contains the control character {control!r} at offset "
                    f"{text.index(control)}; give plain text"
                )
            parsed[name] = text
        return parsed

    def _check_reads(self, product: DataProduct, reads: list[str]) -> list[str]:
        """``reads`` sorted and unique, each a top-level field of the latest schema."""
        if not reads:
            return []
        latest = self.schemas.latest_schema_json(product.value_subject)
        fields = (
            [str(f.get("name")) for f in latest.get("fields", []) if isinstance(f, Mapping)]
            if isinstance(latest, Mapping)
            else []
        )
        if latest is None:
            raise _invalid(
                f"reads: product '{product.name}' has no live schema under "
                f"'{product.value_subject}' to check the fields against; register one first, "
                f"or register the group without reads"
            )
        for index, name in enumerate(reads):
            if name not in fields:
                raise _invalid(
                    f"reads[{index}]: {name[:60]!r} is not a top-level field of the latest "
                    f"schema of product '{product.name}' (subject '{product.value_subject}'); "
                    f"its fields are {', '.join(fields) or 'none'}"
                )
        return sorted(set(reads))
