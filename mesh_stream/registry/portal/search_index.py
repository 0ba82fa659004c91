"""The portal's product search: an in-memory index of the catalog, free text and facets.

The index is built from the catalog once per change of the registry's state (its count of
applied log records, :func:`index_of`), not per request: a search then only scans short
prepared strings, so a catalog of a thousand products answers in milliseconds. Health is not
part of the index (it changes every minute, from another topic); it is looked up per request
and passed in as a mapping.

Free text: every word of the query must occur (case-insensitively, as a substring) in the
product's name, description, tags, owner team or contact, or in a field name or field doc of
its latest schema (nested fields too). Facets count *given the other active filters*, the
usual faceting: the count beside ``kind: aggregate`` is how many results choosing it would
give. No HTTP here; :mod:`.search` renders it.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from mesh_stream.descriptor import DataProduct
from mesh_stream.health import FigureName, ProductHealth, Status
from mesh_stream.registry.service.products import ProductCatalog
from mesh_stream.schema.avro import field_docs

#: The facets, in the order the page shows them, with their labels.
FACETS: dict[str, str] = {
    "domain": "Domain",
    "kind": "Kind",
    "classification": "Classification",
    "tag": "Tag",
    "health": "Health",
}
#: Longer search text is cut here (a query string of any size must not blow up every link).
MAX_QUERY_CHARS = 256
#: Longest facet value taken from a URL (longer ones cannot match anything anyway).
MAX_FACET_CHARS = 128
#: Results per page.
PAGE_SIZE = 50
#: Most tag values listed (by count); an active tag is always listed.
MAX_TAGS_SHOWN = 25
#: The health facet's value for a product the monitor has no current measurement of.
UNKNOWN = "no data"
#: Health values, best first, and how bad each is for a domain's worst status.
HEALTH_ORDER = ("ok", "degraded", "breached", UNKNOWN)
_SEVERITY = {UNKNOWN: 0, "ok": 1, "degraded": 2, "breached": 3}
SEARCH_PATH = "/ui/products"


@dataclass(frozen=True)
class HealthSummary:
    """What a card shows of a product's health."""

    status: str = UNKNOWN
    reason: str = "no measurement from the product monitor"
    #: when the newest record was written (epoch ms), from the freshness figure
    last_record_ms: int | None = None


NO_HEALTH = HealthSummary()


def summarize(health: ProductHealth | None) -> HealthSummary:
    """A product's current health as a card shows it (the monitor's ``no data`` when it
    has no current measurement)."""
    if health is None:
        return NO_HEALTH
    last: int | None = None
    for figure in health.figures:
        if figure.name is FigureName.FRESHNESS_SECONDS and figure.subject is None:
            if figure.value is not None:
                last = health.measured_at_ms - int(figure.value * 1000)
            break
    status = UNKNOWN if health.status is Status.NO_DATA else health.status.value
    return HealthSummary(status=status, reason=health.reason, last_record_ms=last)


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe health value (``no data`` ranks lowest, as in
    :func:`mesh_stream.health.worst`: it says nothing); ``no data`` when there is none."""
    return max(statuses, key=lambda s: _SEVERITY.get(s, 0), default=UNKNOWN)


@dataclass(frozen=True)
class IndexedProduct:
    """One product as the search sees it."""

    name: str
    domain: str
    kind: str
    classification: str
    tags: tuple[str, ...]
    owner_team: str
    owner_contact: str
    description: str
    #: everything free text matches, casefolded, one item a line
    text: str
    #: the name casefolded (name matches rank first)
    folded_name: str

    @classmethod
    def of(cls, product: DataProduct, schema_json: object) -> IndexedProduct:
        parts = [
            product.name,
            product.description,
            *product.tags,
            product.owner.team,
            product.owner.contact,
        ]
        for path, doc in field_docs(schema_json):
            parts.append(path)
            if doc:
                parts.append(doc)
        return cls(
            name=product.name,
            domain=product.domain,
            kind=product.kind.value,
            classification=product.classification.value,
            tags=tuple(product.tags),
            owner_team=product.owner.team,
            owner_contact=product.owner.contact,
            description=product.description,
            text="\n".join(parts).casefold(),
            folded_name=product.name.casefold(),
        )

    def facet_values(self, facet: str, health: str) -> tuple[str, ...]:
        if facet == "tag":
            return self.tags
        if facet == "health":
            return (health,)
        value: str = getattr(self, facet)
        return (value,)


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()[:limit]
    return value if value and value.isprintable() else None  # no data holds a NUL


@dataclass(frozen=True)
class SearchQuery:
    """What the page was asked: free text, one value per facet, a page number."""

    q: str = ""
    domain: str | None = None
    kind: str | None = None
    classification: str | None = None
    tag: str | None = None
    health: str | None = None
    page: int = 1
    #: the free text given was longer than :data:`MAX_QUERY_CHARS` (and was cut)
    truncated: bool = False

    @classmethod
    def parse(
        cls,
        q: str | None = None,
        *,
        page: int | str | None = None,
        **facets: str | None,
    ) -> SearchQuery:
        """A query from URL parameters, cut to sane sizes; unknown names are ignored; control
        and format characters (NUL, bidi overrides) count as spaces."""
        shown = "".join(ch if ch.isprintable() else " " for ch in q or "")
        text = " ".join(shown.split())
        truncated = len(text) > MAX_QUERY_CHARS
        if truncated:
            text = text[:MAX_QUERY_CHARS].rstrip()
        try:
            number = max(1, min(int(page or 1), 10**6))
        except (TypeError, ValueError):
            number = 1
        chosen = {f: _clean(facets.get(f), MAX_FACET_CHARS) for f in FACETS}
        return cls(q=text, page=number, truncated=truncated, **chosen)

    def filters(self) -> dict[str, str]:
        """The active facets and their values."""
        return {f: v for f in FACETS if (v := getattr(self, f)) is not None}

    def words(self) -> list[str]:
        return self.q.casefold().split()

    def toggled(self, facet: str, value: str | None) -> SearchQuery:
        """This query with ``facet`` set to ``value``, or cleared if already ``value``
        (back to page 1)."""
        current = getattr(self, facet)
        changes: dict[str, Any] = {facet: None if current == value else value}
        return replace(self, page=1, **changes)

    def url(self, *, path: str = SEARCH_PATH) -> str:
        """The page's address for this query (what the browser's address bar shows)."""
        params: list[tuple[str, str]] = [("q", self.q)] if self.q else []
        params += list(self.filters().items())
        if self.page > 1:
            params.append(("page", str(self.page)))
        return f"{path}?{urlencode(params)}" if params else path

    def at_page(self, number: int) -> SearchQuery:
        return replace(self, page=number)

    def without_filters(self) -> SearchQuery:
        """The same free text, no facet (the "clear all filters" link)."""
        return SearchQuery(q=self.q)


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int
    selected: bool
    #: the address that toggles this value
    url: str


@dataclass(frozen=True)
class Facet:
    name: str
    label: str
    values: tuple[FacetValue, ...]
    #: the address without this facet (None: the facet is not active)
    clear_url: str | None


@dataclass(frozen=True)
class Hit:
    product: IndexedProduct
    health: HealthSummary


@dataclass(frozen=True)
class SearchResult:
    query: SearchQuery
    #: every match, in rank order (the page shows ``page_hits``)
    hits: tuple[Hit, ...]
    facets: tuple[Facet, ...]
    page_hits: tuple[Hit, ...] = ()
    pages: int = 1
    previous_url: str | None = None
    next_url: str | None = None

    @property
    def total(self) -> int:
        return len(self.hits)

    @property
    def first_shown(self) -> int:
        return (self.query.page - 1) * PAGE_SIZE + 1 if self.page_hits else 0

    @property
    def last_shown(self) -> int:
        return self.first_shown + len(self.page_hits) - 1 if self.page_hits else 0


@dataclass
class SearchIndex:
    """Every registered product, prepared for search."""

    products: tuple[IndexedProduct, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, catalog: ProductCatalog) -> SearchIndex:
        entries = []
        for name in catalog.product_names():
            product = catalog.get_product(name)
            if product is None:  # deleted while we looked
                continue
            schema = catalog.schemas.latest_schema_json(product.value_subject)
            entries.append(IndexedProduct.of(product, schema))
        return cls(tuple(entries))

    def search(
        self, query: SearchQuery, health: Mapping[str, HealthSummary] | None = None
    ) -> SearchResult:
        """The products matching ``query``, its facets, and the page of results asked for."""
        health = health or {}
        words = query.words()
        filters = query.filters()
        matched_text: list[tuple[IndexedProduct, str, dict[str, bool]]] = []
        for product in self.products:
            if not all(word in product.text for word in words):
                continue
            status = health.get(product.name, NO_HEALTH).status
            passes = {
                facet: wanted in product.facet_values(facet, status)
                for facet, wanted in filters.items()
            }
            matched_text.append((product, status, passes))
        counts: dict[str, Counter[str]] = {facet: Counter() for facet in FACETS}
        hits: list[Hit] = []
        for product, status, passes in matched_text:
            failed = [facet for facet, ok in passes.items() if not ok]
            if not failed:
                hits.append(Hit(product, health.get(product.name, NO_HEALTH)))
            # A product counts for facet F when it passes every filter but F's own.
            for facet in FACETS:
                if not failed or failed == [facet]:
                    counts[facet].update(product.facet_values(facet, status))
        hits.sort(key=lambda hit: (not _name_matches(hit.product, words), hit.product.name))
        facets = tuple(self._facet(query, name, counts[name]) for name in FACETS)
        pages = max(1, -(-len(hits) // PAGE_SIZE))
        page = min(query.page, pages)
        query = query.at_page(page)
        start = (page - 1) * PAGE_SIZE
        return SearchResult(
            query=query,
            hits=tuple(hits),
            facets=facets,
            page_hits=tuple(hits[start : start + PAGE_SIZE]),
            pages=pages,
            previous_url=query.at_page(page - 1).url() if page > 1 else None,
            next_url=query.at_page(page + 1).url() if page < pages else None,
        )

    def _facet(self, query: SearchQuery, name: str, counts: Counter[str]) -> Facet:
        selected = getattr(query, name)
        if name == "health":
            names = [h for h in HEALTH_ORDER if counts[h] or h == selected]
        else:
            names = [v for v, n in counts.most_common() if n]
            names.sort(key=lambda v: (-counts[v], v) if name == "tag" else (v,))
            if name == "tag":
                names = names[:MAX_TAGS_SHOWN]
        if selected is not None and selected not in names:
            names.insert(0, selected)  # an unknown value: shown, with 0, so it can be cleared
        values = tuple(
            FacetValue(v, counts[v], v == selected, query.toggled(name, v).url()) for v in names
        )
        clear = query.toggled(name, selected).url() if selected is not None else None
        return Facet(name, FACETS[name], values, clear)


def _name_matches(product: IndexedProduct, words: list[str]) -> bool:
    return bool(words) and all(word in product.folded_name for word in words)


class _Cached:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[int, int] | None = None
        self.index = SearchIndex()


_CACHE: weakref.WeakKeyDictionary[ProductCatalog, _Cached] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def index_of(catalog: ProductCatalog) -> SearchIndex:
    """``catalog``'s index, rebuilt only when the registry state applied a record since.

    The key is read before building, so a record applied during a build makes the next
    call build again rather than keep a stale index.
    """
    with _CACHE_LOCK:
        cached = _CACHE.get(catalog)
        if cached is None:
            cached = _CACHE[catalog] = _Cached()
    state = catalog.schemas.state
    key = (id(state), state.applied)
    with cached.lock:
        if cached.key != key:
            cached.index = SearchIndex.build(catalog)
            cached.key = key
        return cached.index


def health_of(every: Mapping[str, ProductHealth]) -> dict[str, HealthSummary]:
    """:func:`summarize` for each product of ``every`` (``ProductHealthView.every()``)."""
    return {name: summarize(found) for name, found in every.items()}
