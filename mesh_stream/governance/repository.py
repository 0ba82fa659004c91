"""Lint a project: every descriptor in its products folder with its schema (mesh.yaml's
``products`` and ``schemas``; ``domains/`` and ``schemas/`` by default).

Nothing here raises on bad input files: a descriptor that does not load, a schema that is
missing or broken and an illegal domain override all become violations with file:line, so
one run shows every problem. Only an unreadable global ``mesh-policies.yaml`` stops the run
(:class:`ConfigurationError`), because without it no rule is known.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import fastavro
import yaml
from avro.errors import IgnoredLogicalType
from pydantic import ValidationError

from mesh_stream.descriptor import (
    DataProduct,
    described_twice,
    descriptor_files,
    field_problem,
    is_hidden,
    key_problem,
    load_yaml,
    non_text_key,
    read_descriptor_text,
    yaml_problem,
)
from mesh_stream.errors import ConfigurationError, DescriptorError, SchemaError
from mesh_stream.files import read_regular_text
from mesh_stream.governance import locate
from mesh_stream.governance.catalog import Catalog, LayeredCatalog, StaticCatalog
from mesh_stream.governance.config import GLOBAL_POLICIES_FILE, GovernanceConfig, load_governance
from mesh_stream.governance.engine import Locator, check_product
from mesh_stream.governance.model import Finding, Loc, Severity, Violation
from mesh_stream.governance.policies import (
    BUILTIN_POLICIES,
    Layout,
    Review,
    ignored_logical_types,
)
from mesh_stream.project import PROJECT_FILE, MeshProject, domain_name_problem, load_project
from mesh_stream.schema import strict_json
from mesh_stream.schema.avro import parse_schema, size_problem

LOAD_ERROR_POLICY = {
    "owner": "ownership",
    "slos": "slos-declared",
    "classification": "classification-declared",
}
"""Descriptor fields whose absence or invalid value is the business of a named policy."""


@dataclass(frozen=True)
class LintReport:
    """The outcome of linting one repository."""

    root: Path
    products: int
    violations: tuple[Violation, ...]
    policies_source: str | None = None

    @property
    def errors(self) -> int:
        return sum(v.severity is Severity.ERROR for v in self.violations)

    @property
    def warnings(self) -> int:
        return sum(v.severity is Severity.WARNING for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "policies": self.policies_source or "built-in defaults",
            "products": self.products,
            "errors": self.errors,
            "warnings": self.warnings,
            "violations": [v.to_dict() for v in self.violations],
        }


def _file_violation(
    name: str, message: str, file: str, line: int | None, *, fix: str | None = None, **extra: Any
) -> Violation:
    """A problem found while loading a file: always an error, since nothing can be checked.
    ``fix`` says what to do about this problem, where the policy's says it in general."""
    policy = BUILTIN_POLICIES[name]
    return Violation(
        policy=name,
        severity=Severity.ERROR,
        message=message,
        why=policy.why,
        fix=fix or policy.fix,
        file=file,
        line=line,
        **extra,
    )


#: What to do about each way a schema file cannot be read (h44: every one got the policy's
#: "point the descriptor at an existing .avsc", also for a file that exists).
_FIX_SIZE = "Make the schema smaller (fewer fields, shorter docs), or split the record."
_FIX_DEPTH = "Nest types less deeply: a schema may nest at most 64 types inside one another."
_FIX_JSON = "Correct the JSON at the line shown (a comma, a quote or a bracket, usually)."
_FIX_FINITE = "Write a finite number: JSON has no NaN or Infinity."
_FIX_RECORD = 'Make the top-level schema an Avro record: {"type": "record", "name": ..., ...}.'
_FIX_AVRO = "Correct the schema at the line shown, as the message says."
_FIX_UNREADABLE_DESCRIPTOR = (
    "Make the descriptor a readable UTF-8 YAML file (not a link to nothing, a folder or a "
    "device), as the message says, or remove it."
)
_FIX_UTF8 = "Save the .avsc as UTF-8."


@dataclass
class _Document:
    """A file as read for linting: display path, its node tree for line lookup."""

    display: str
    node: yaml.Node | None = None

    def line(self, loc: Loc) -> int | None:
        return locate.line_of(self.node, loc)


@dataclass
class _Loaded:
    product: DataProduct
    descriptor: _Document
    schema: Mapping[str, Any] | None = None
    schema_document: _Document | None = None
    problems: list[Violation] = field(default_factory=list)


def _load_descriptor(path: Path, display: str) -> tuple[_Loaded | None, list[Violation]]:
    try:
        text = read_descriptor_text(path)
    except DescriptorError as exc:  # not a file that can be read: no line to correct
        fix = _FIX_UNREADABLE_DESCRIPTOR
        return None, [_file_violation("descriptor-valid", str(exc), display, None, fix=fix)]
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # PyYAML raises ValueError for impossible dates, RecursionError for absurd nesting
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [_file_violation("descriptor-valid", yaml_problem(exc), display, line)]
    document = _Document(display, locate.compose(text))
    if not isinstance(data, dict):
        message = "a descriptor must be a YAML mapping of fields (name, domain, kind, ...)"
        return None, [_file_violation("descriptor-valid", message, display, 1)]
    untext = non_text_key(document.node)
    if untext is not None:
        key, held_by = untext
        line = key.start_mark.line + 1
        problem = f"{held_by}{key_problem(key)}"
        return None, [_file_violation("descriptor-valid", problem, display, line)]
    try:
        product = DataProduct.model_validate(data)
    except ValidationError as exc:
        violations = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if isinstance(part, (int, str)))
            path_text = ".".join(map(str, loc))
            name = LOAD_ERROR_POLICY.get(str(loc[0]), "descriptor-valid") if loc else None
            violations.append(
                _file_violation(
                    name or "descriptor-valid",
                    f"{path_text}: {field_problem(error)}" if loc else field_problem(error),
                    display,
                    document.line(loc),
                    field=path_text or None,
                    product=data.get("name") if isinstance(data.get("name"), str) else None,
                )
            )
        return None, violations
    return _Loaded(product, document), []


def _load_schema(root: Path, loaded: _Loaded) -> None:
    """Read, parse and validate the product's Avro schema; problems go on ``loaded``."""
    product = loaded.product
    where = loaded.descriptor
    try:
        text = read_regular_text(product.schema_path(root))
    except (OSError, UnicodeDecodeError, SchemaError) as exc:
        if isinstance(exc, SchemaError):  # outside the project, or a symlink loop
            reason = str(exc).removeprefix(f"{product.name}: schema: {product.schema_file!r} ")
        elif isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            reason = str(exc)
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                f"cannot read schema {product.schema_file!r}: {reason}",
                where.display,
                where.line(("schema",)),
                fix=_FIX_UTF8 if isinstance(exc, UnicodeDecodeError) else None,
                field="schema",
                product=product.name,
            )
        )
        return
    display = PurePosixPath(product.schema_file).as_posix()
    too_big = size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_big is not None:  # before reading it as JSON: 50 MB took a minute and a GB
        problem = f"not a valid Avro schema: {too_big}"
        loaded.problems.append(
            _file_violation(
                "schema-valid", problem, display, 1, fix=_FIX_SIZE, product=product.name
            )
        )
        return
    try:
        schema = strict_json.loads(text)
    except RecursionError:
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                "nested too deeply to read",
                display,
                None,
                fix=_FIX_DEPTH,
                product=product.name,
            )
        )
        return
    except json.JSONDecodeError as exc:
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                f"not valid JSON: {exc.msg}",
                display,
                exc.lineno,
                fix=_FIX_JSON,
                product=product.name,
            )
        )
        return
    except strict_json.NonFiniteNumberError as exc:
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                f"not a valid Avro schema: {exc.located}",
                display,
                _Document(display, locate.compose(text)).line(exc.loc) or 1,
                fix=_FIX_FINITE,
                product=product.name,
            )
        )
        return
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                "the schema of a product must be an Avro record",
                display,
                1,
                fix=_FIX_RECORD,
                product=product.name,
            )
        )
        return
    try:
        # The specification's rules with field paths, as the registry applies them; then
        # fastavro, which the SDK encodes with.
        with logical_type_warnings_off():
            parse_schema(schema)
            fastavro.parse_schema(schema)
    except SchemaError as exc:
        reason = str(exc).removeprefix("invalid Avro schema: ")
        line = _Document(display, locate.compose(text)).line(exc.loc) or 1
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                f"not a valid Avro schema: {reason}",
                display,
                line,
                fix=_FIX_SIZE if "more than" in reason and "fields" in reason else _FIX_AVRO,
                product=product.name,
            )
        )
        return
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        loaded.problems.append(
            _file_violation(
                "schema-valid",
                f"not a valid Avro schema: {exc}",
                display,
                1,
                fix=_FIX_AVRO,
                product=product.name,
            )
        )
        return
    loaded.schema = schema
    loaded.schema_document = document = _Document(display, locate.compose(text))
    for finding in ignored_logical_types(schema):
        loaded.problems.append(
            _file_violation(
                "logical-types",
                finding.message,
                display,
                document.line(finding.loc),
                field=finding.field,
                product=product.name,
            )
        )


@contextmanager
def logical_type_warnings_off() -> Iterator[None]:
    """Silence the ``avro`` package's IgnoredLogicalType warnings while parsing: the
    ``logical-types`` policy reports the same annotations with file:line, the field and the
    types supported, where the raw warning (once per process, no file) would only confuse."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IgnoredLogicalType)
        yield


def _locator(loaded: _Loaded) -> Locator:
    def locate_finding(finding: Finding) -> tuple[str | None, int | None]:
        document = loaded.schema_document if finding.in_schema else loaded.descriptor
        if document is None:
            return loaded.descriptor.display, None
        return document.display, document.line(finding.loc)

    return locate_finding


def _reserved_readers(loaded: _Loaded, display: str) -> list[Violation]:
    """``readers`` entries that name no domain can have (a platform service's user, ``admin``,
    ``mesh-…``): `mesh acl` would grant that user READ, and WRITE on the dead-letter topic."""
    product = loaded.product
    return [
        _file_violation(
            "descriptor-valid",
            f"readers: {problem}",
            display,
            loaded.descriptor.line(("readers", index)),
            field=f"readers[{index}]",
            product=product.name,
        )
        for index, reader in enumerate(product.readers)
        if (problem := domain_name_problem(reader))
    ]


def _resolved_or_none(path: Path) -> Path | None:
    """``path`` with symlinks followed, None for a symlink loop (reported where it is read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _schemas_without_product(
    layout: _Layout, config: GovernanceConfig, loaded: list[_Loaded], unloadable_files: list[Path]
) -> list[Violation]:
    """``schema-has-product``: `.avsc` files under schemas/ that no descriptor points at.

    A descriptor that does not load may be the one pointing at a schema, so its ``schema:``
    text counts as a reference too (no second report for the same mistake).
    """
    root = layout.root
    referenced = {_resolved_or_none(root / item.product.schema_file) for item in loaded}
    for path in unloadable_files:
        found = re.search(r"^schema:\s*['\"]?([^'\"\s#]+)", _text_or_empty(path), re.MULTILINE)
        if found:
            referenced.add(_resolved_or_none(root / found.group(1)))
    violations = []
    for schema in sorted(layout.schemas.glob("**/*.avsc")):
        if _resolved_or_none(schema) in referenced:
            continue
        display = schema.relative_to(root).as_posix()
        domain = schema.relative_to(layout.schemas).parts[0]
        rule = config.rules_for(domain)["schema-has-product"]
        if rule.severity is Severity.OFF:
            continue
        violations.append(
            Violation(
                policy=rule.policy.name,
                severity=rule.severity,
                message=f"no product descriptor under {layout.products_name}/ has "
                f"`schema: {display}`",
                why=rule.policy.why,
                fix=rule.policy.fix,
                file=display,
                line=1,
            )
        )
    return violations


def _text_or_empty(path: Path) -> str:
    try:
        return read_regular_text(path)
    except (OSError, UnicodeDecodeError):
        return ""


DOMAIN_POLICIES_FILE = "policies.yaml"


def _misplaced_descriptors(layout: _Layout) -> list[Violation]:
    """Descriptor-looking YAML outside ``domains/<domain>/products/``: never read, so never
    checked or registered. Without this, `mesh lint` passes on a product it did not see."""
    root, domains, folder = layout.root, layout.products, layout.products_name
    read = set(descriptor_files(domains))
    found = []
    for path in sorted([*domains.rglob("*.yaml"), *domains.rglob("*.yml")]):
        relative = path.relative_to(domains)
        if path in read or relative.parts[1:] == (DOMAIN_POLICIES_FILE,) or not path.is_file():
            continue
        if any(is_hidden(part) for part in relative.parts):  # never read as descriptors
            continue
        try:
            data = yaml.safe_load(read_regular_text(path))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError):
            continue
        if not (isinstance(data, dict) and "name" in data and "kind" in data):
            continue
        domain, _, short = str(data["name"]).partition(".")
        expected = f"{folder}/{domain}/products/{short or path.stem}{path.suffix}"
        found.append(
            _file_violation(
                "naming",
                f"looks like a product descriptor ({data['name']}) but lies outside "
                f"{folder}/<domain>/products/, so it is never linted or registered; move it to "
                f"{expected}",
                path.relative_to(root).as_posix(),
                1,
            )
        )
    return found


@dataclass(frozen=True)
class _Layout:
    """Where a project keeps its descriptors and schemas (mesh.yaml's ``products`` and
    ``schemas``; ``domains/`` and ``schemas/`` by default)."""

    root: Path
    products: Path
    schemas: Path

    @property
    def products_name(self) -> str:
        return self.products.relative_to(self.root).as_posix()

    @property
    def policy_layout(self) -> Layout:
        """The folders as the policies see them (``naming`` follows them)."""
        return Layout(
            PurePosixPath(self.products_name),
            PurePosixPath(self.schemas.relative_to(self.root).as_posix()),
        )


def lint_project(
    project: MeshProject, policies_file: Path | None = None, *, outside: Catalog | None = None
) -> LintReport:
    """:func:`lint_repository` over a project's own folders and policy file (mesh.yaml)."""
    if policies_file is None:
        policies_file = project_policies(project)
    return lint_repository(
        project.root,
        policies_file,
        products_dir=project.descriptors_dir,
        schemas_dir=project.schemas_dir,
        outside=outside,
        project=project,
    )


def _project_setting(project: MeshProject, key: str) -> str | None:
    """``mesh.yaml:LINE`` of ``key`` when the project file sets it (None: a default)."""
    try:
        text = read_regular_text(project.config_file)
        line = locate.line_of(locate.compose(text), (key,))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return None
    return f"{project.config_file}:{line}" if line is not None else None


def project_policies(project: MeshProject) -> Path | None:
    """The policy file mesh.yaml names, when it exists and is not the default one (that one
    :func:`load_governance` finds and names relative to the root itself)."""
    file = project.policies_file
    return file if file.is_file() and file != project.root / GLOBAL_POLICIES_FILE else None


def lint_repository(
    root: Path | str,
    policies_file: Path | None = None,
    *,
    products_dir: Path | None = None,
    schemas_dir: Path | None = None,
    outside: Catalog | None = None,
    project: MeshProject | None = None,
) -> LintReport:
    """Run every policy over the descriptors below ``products_dir`` (default
    ``root/domains``) and their schemas (the unreferenced ones under ``schemas_dir``,
    default ``root/schemas``). ``outside`` is the rest of the mesh (the registry, for
    `mesh products plan`): inputs from other domains' repositories are found there.
    With ``project``, a product of a domain it does not own is an error, as `mesh products
    plan` and the SDK refuse it. A ``root`` holding ``mesh.yaml``, given without folders or
    ``project``, is linted as that project (:func:`lint_project`: its folders and policy
    file)."""
    root = Path(root)
    bare = project is None and products_dir is None and schemas_dir is None
    if bare and (root / PROJECT_FILE).is_file():
        return lint_project(load_project(root), policies_file, outside=outside)
    layout = _Layout(root, products_dir or root / "domains", schemas_dir or root / "schemas")
    if not layout.products.is_dir() and project is not None:
        where = _project_setting(project, "products")
        if where is not None:  # mesh.yaml names a folder that is not there: a typo there
            raise ConfigurationError(
                f"{where}: products: folder {layout.products_name!r} does not exist under "
                f"{root}; fix `products` in {project.config_file.name} (the folder holding "
                f"<domain>/products/*.yaml), or create the folder"
            )
    if not layout.products.is_dir():
        raise ConfigurationError(
            f"{root}: no {layout.products_name}/ folder here; pass the repository root that "
            f"holds {layout.products_name}/ and {layout.schemas.relative_to(root).as_posix()}/ "
            f"(mesh lint PATH)"
        )
    config: GovernanceConfig = load_governance(root, policies_file, domains_dir=layout.products)
    violations: list[Violation] = list(config.problems)
    loaded: list[_Loaded] = []
    unloadable: list[str] = []
    unloadable_files: list[Path] = []
    first: dict[str, str] = {}  # product name -> its first descriptor
    for path in descriptor_files(layout.products):
        display = path.relative_to(root).as_posix()
        item, problems = _load_descriptor(path, display)
        violations.extend(problems)
        if item is None:
            unloadable_files.append(path)
            unloadable.append(f"{path.parent.parent.name}.{path.stem}")
            unloadable.extend(v.product for v in problems if v.product)
        elif item.product.name in first:
            violations.append(
                _file_violation(
                    "descriptor-valid",
                    described_twice(item.product.name, first[item.product.name]),
                    display,
                    item.descriptor.line(("name",)),
                    field="name",
                    product=item.product.name,
                )
            )
        else:
            first[item.product.name] = display
            violations += _reserved_readers(item, display)
            _load_schema(root, item)
            violations.extend(item.problems)
            loaded.append(item)
            foreign = project.foreign_domain(item.product.domain) if project else None
            if foreign is not None:
                violations.append(
                    _file_violation(
                        "domain-in-project",
                        foreign,
                        display,
                        item.descriptor.line(("domain",)),
                        product=item.product.name,
                    )
                )
    catalog: Catalog = StaticCatalog(
        [item.product for item in loaded],
        {item.product.name: item.schema for item in loaded if item.schema is not None},
        unloadable,
    )
    if outside is not None:
        catalog = LayeredCatalog(catalog, outside)
    for item in loaded:
        review = Review(
            item.product,
            item.schema,
            catalog,
            PurePosixPath(item.descriptor.display),
            layout.policy_layout,
        )
        violations.extend(
            check_product(review, config.rules_for(item.product.domain), _locator(item))
        )
    violations.extend(_schemas_without_product(layout, config, loaded, unloadable_files))
    violations.extend(_misplaced_descriptors(layout))
    violations.sort(key=lambda v: (v.file or "", v.line or 0, v.policy, v.message))
    return LintReport(root, len(loaded), tuple(violations), config.source)
