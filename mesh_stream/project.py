"""A project is a folder with ``mesh.yaml``: the domains a repository owns and where their
descriptors, schemas, policies and runnables live.

Every command and library call takes its root from :func:`find_project` (an explicit
``--project``, else ``MESH_PROJECT_ROOT``, else the nearest ``mesh.yaml`` upwards from the
working directory), never from where mesh-stream is installed, so a domain team's own
repository works exactly like the sample mesh. ``mesh.yaml``::

    name: shop                    # optional, for people
    domains: [orders, payments]   # the domains this repository owns (default: every folder
                                  # under `products` that has a products/ folder)
    products: domains             # folder holding <domain>/products/*.yaml
    schemas: schemas              # folder holding <domain>/*.avsc
    policies: mesh-policies.yaml  # the federated policy file
    runnables: domains.runnables  # optional, the module `mesh up` starts

Unknown keys, a key given twice and bad values are refused with
``mesh.yaml:line: field: problem``; so are a file far larger than any real ``mesh.yaml``
(:data:`MAX_PROJECT_FILE_BYTES`) and a root that cannot be resolved (a symlink loop, a name
too long), each as one line rather than a traceback. A ``mesh.yaml`` that is there but is no
file (a folder, a symlink loop, a broken symlink, a FIFO) is named as what it is, never read
as "no mesh.yaml": looking upwards from the working directory stops at it too.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from mesh_stream.descriptor import (
    NAME_PART,
    DataProduct,
    ProductSource,
    is_hidden,
    line_of,
    load_descriptors,
    validate_yaml,
)
from mesh_stream.descriptor import resolve_product as _resolve_in
from mesh_stream.errors import ConfigurationError, DescriptorError, ProjectNotFoundError
from mesh_stream.files import file_kind, not_utf8
from mesh_stream.settings import MeshSettings

PROJECT_FILE = "mesh.yaml"
ROOT_SETTING = "MESH_PROJECT_ROOT"
_DOMAIN = re.compile(rf"^{NAME_PART}\Z")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
#: A domain is also a principal (registry tokens, broker users): the registry issues tokens
#: to names of at most this length and never to ``admin``, its super user.
MAX_DOMAIN_LENGTH = 64
RESERVED_PRINCIPAL = "admin"
#: Kafka users of the platform's own services (SCRAM users of a local secured cluster, and
#: the principals the ACL plan grants by default). A domain is a Kafka user too, so a domain
#: with one of these names would share the service's password and grants.
REGISTRY_USER = "registry"
MONITOR_USER = "monitor"
SERVICE_USERS = (REGISTRY_USER, MONITOR_USER)
#: The owner the registry records for what was registered while it ran without
#: authentication (``--open-writes``): a domain of that name would take those over.
ANONYMOUS_PRINCIPAL = "anonymous"
#: The platform's own names start so: processors' ``mesh-<domain>.…`` topics, groups and
#: transactional ids, the registry's ``mesh-registry-…``, the monitor's ``mesh-monitor-…``,
#: ``mesh tail``'s ``mesh-tail-…``. A domain named ``mesh`` or ``mesh-…`` would be granted
#: them (the ACL plan grants a domain's names by prefix).
PLATFORM_NAME = "mesh"
#: A real mesh.yaml is a few hundred bytes; anything past this is a mistake (a data file
#: named mesh.yaml), refused before YAML spends seconds and memory on it.
MAX_PROJECT_FILE_BYTES = 1024 * 1024


def domain_name_problem(domain: str) -> str | None:
    """Why ``domain`` cannot name a domain, None when it can: the name pattern, the length
    the registry issues tokens to, and the names the platform keeps for itself."""
    if not _DOMAIN.match(domain):
        return f"{domain[:40]!r} is not a domain name (lowercase, e.g. orders)"
    if len(domain) > MAX_DOMAIN_LENGTH:
        return (
            f"domain {domain[:40]!r}… is longer than {MAX_DOMAIN_LENGTH} characters, so it "
            f"could never be issued a registry credential"
        )
    if domain == RESERVED_PRINCIPAL:
        return (
            "'admin' is the registry's and the broker's super user, not a domain; name the "
            "domain after what it owns (e.g. orders)"
        )
    if domain in SERVICE_USERS:
        return (
            f"{domain!r} is the Kafka user of the platform's {domain}, not a domain (the "
            f"domain would share its password and grants); name the domain after what it "
            f"owns (e.g. orders)"
        )
    if domain == ANONYMOUS_PRINCIPAL:
        return (
            "'anonymous' is the owner the registry records for what was registered while it "
            "ran without authentication, not a domain (the domain would take those "
            "registrations over); name the domain after what it owns (e.g. orders)"
        )
    if domain == PLATFORM_NAME or domain.startswith(f"{PLATFORM_NAME}-"):
        return (
            f"{domain!r} would own the platform's own names (processors' `mesh-<domain>.` "
            f"topics, the registry's `mesh-registry-` ids), since a domain is granted the "
            f"names it starts; name the domain after what it owns (e.g. orders)"
        )
    return None


def overlapping_domain(domain: str, others: Iterable[str]) -> str | None:
    """Why ``domain`` cannot be a domain beside ``others`` (None when it can): one of the two
    names is the other followed by ``-`` (orders, orders-eu), so the shorter one's
    ``<d>-…`` consumer groups and transactional ids, granted by prefix, would be the
    longer one's names too."""
    for other in sorted(set(others) - {domain}):
        shorter, longer = sorted((domain, other), key=len)
        if longer.startswith(f"{shorter}-"):
            return (
                f"domain {longer!r} starts with '{shorter}-': the `{shorter}-…` consumer "
                f"groups and transactional ids of domain {shorter!r} would cover those of "
                f"{longer!r}"
            )
    return None


def _inside_project(value: str) -> str:
    """A folder or file named relative to the project root, never outside it."""
    path = PurePosixPath(value)
    if (
        not value.strip()
        or path.is_absolute()
        or ".." in path.parts
        or "\\" in value
        or value.startswith("~")  # the home folder is outside the project too
        or any(ord(c) < 32 for c in value)  # NUL and other control characters
    ):
        raise ValueError(
            f"{value!r} must be a path relative to the project root without `..` (e.g. domains)"
        )
    return value


class ProjectFile(BaseModel):
    """The fields of ``mesh.yaml``; strict, so a typo is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr | None = Field(default=None, description="A name for people.")
    domains: tuple[StrictStr, ...] | None = Field(
        default=None,
        description="The domains this repository owns; unset = every folder under `products` "
        "holding a products/ folder.",
    )
    products: StrictStr = Field(
        default="domains", description="Folder holding `<domain>/products/*.yaml`."
    )
    schemas: StrictStr = Field(default="schemas", description="Folder holding `<domain>/*.avsc`.")
    policies: StrictStr = Field(
        default="mesh-policies.yaml", description="The federated policy file (optional file)."
    )
    runnables: StrictStr | None = Field(
        default=None,
        description="Python module (importable from the project root) whose runnables "
        "`mesh up` starts: simulators, processors.",
    )

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for domain in value or ():
            problem = domain_name_problem(domain)
            if problem is not None:
                raise ValueError(problem)
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a domain is listed twice")
        return value

    @field_validator("products", "schemas", "policies")
    @classmethod
    def _check_paths(cls, value: str) -> str:
        return _inside_project(value)

    @field_validator("runnables")
    @classmethod
    def _check_runnables(cls, value: str | None) -> str | None:
        if value is not None and not _MODULE.match(value):
            raise ValueError(f"{value!r} is not a Python module name (e.g. domains.runnables)")
        return value


@dataclass(frozen=True)
class MeshProject:
    """A loaded project: its root and the folders ``mesh.yaml`` names, as absolute paths."""

    root: Path
    domains: tuple[str, ...]
    descriptors_dir: Path
    schemas_dir: Path
    policies_file: Path
    runnables: str | None = None
    name: str | None = None

    @property
    def config_file(self) -> Path:
        return self.root / PROJECT_FILE

    def owns(self, domain: str) -> bool:
        return domain in self.domains

    def foreign_domain(self, domain: str) -> str | None:
        """Why a product of ``domain`` does not belong here (None when the project owns it)."""
        if self.owns(domain):
            return None
        return (
            f"domain {domain!r} is not one of this project's domains {list(self.domains)}; "
            f"add it to `domains` in {self.config_file}"
        )

    def descriptors(self) -> list[DataProduct]:
        """Every local descriptor; one of a domain the project does not own is an error."""
        products = load_descriptors(self.descriptors_dir, missing_ok=True)
        strangers = [(p, problem) for p in products if (problem := self.foreign_domain(p.domain))]
        if strangers:
            raise DescriptorError(
                "\n".join(
                    f"{self.descriptors_dir / p.domain}: product {p.name}: {problem}"
                    for p, problem in strangers
                )
            )
        return products

    def descriptor(self, name: str) -> DataProduct | None:
        """The local descriptor of product ``name``, or None when this project lacks it."""
        return next((p for p in self.descriptors() if p.name == name), None)

    def schema_path(self, product: DataProduct) -> Path:
        """The ``.avsc`` of a local product (the descriptor's ``schema`` is root-relative)."""
        return product.schema_path(self.root)


def load_project(root: Path | str, *, defaults_without_file: bool = False) -> MeshProject:
    """Read ``root/mesh.yaml``; a missing file is :class:`ProjectNotFoundError`, unless
    ``defaults_without_file`` (the old ``--root`` flag) reads the folder with the defaults."""
    root = _resolved(_folder(root, "project root"), "project root")
    config_file = root / PROJECT_FILE
    if defaults_without_file and not _present(config_file):
        return _project(root, ProjectFile())
    _refuse_unusable(root, config_file)
    text = _read_project_file(config_file)
    spec = validate_yaml(
        text,
        str(config_file),
        ProjectFile,
        ConfigurationError,
        PROJECT_FILE,
        empty_is_defaults=True,
    )
    _refuse_wrong_kinds(root, spec, config_file)
    return _project(root, spec)


def _refuse_unusable(root: Path, config_file: Path) -> None:
    """No ``mesh.yaml`` in ``root`` is :class:`ProjectNotFoundError`; one that is there but
    cannot be the project file (a folder, a symlink loop, a broken symlink, a FIFO, a folder
    that cannot be searched) is a :class:`ConfigurationError` saying what it is."""
    must_be = f"the project file must be a YAML file named {PROJECT_FILE}"
    try:
        mode = config_file.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigurationError(
                f"{config_file} is a symlink loop (following it leads back to it); {must_be}: "
                f"replace the link with the file, or point it at one"
            ) from exc
        if exc.errno == errno.ENOENT and _is_symlink(config_file):
            raise ConfigurationError(
                f"{config_file} is a broken symlink (to {_link_target(config_file)}, which "
                f"does not exist); {must_be}: point the link at one, or replace it with the file"
            ) from exc
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            raise ProjectNotFoundError(
                f"{root} holds no {PROJECT_FILE}; create a project with `mesh init DOMAIN "
                f"{root}` or point --project / {ROOT_SETTING} at the folder holding "
                f"{PROJECT_FILE}"
            ) from exc
        raise ConfigurationError(
            f"{config_file}: cannot read: {exc.strerror or exc}; check its permissions"
        ) from exc
    if stat.S_ISDIR(mode):
        raise ConfigurationError(f"{config_file} is a folder; {must_be} (rename the folder)")
    if not stat.S_ISREG(mode):
        raise ConfigurationError(
            f"{config_file} is {file_kind(mode)}, not a file; {must_be} (replace it with one)"
        )


def _link_target(path: Path) -> str:
    try:
        return _shown(os.readlink(path))
    except OSError:
        return "?"


def _refuse_wrong_kinds(root: Path, spec: ProjectFile, config_file: Path) -> None:
    """A folder field naming a file, or the policy file named but absent or a folder: each
    would otherwise read as "nothing there" (no descriptors, the built-in policies), so a
    typo would quietly turn the project's governance off. Each is said at its line."""
    for field in ("products", "schemas"):
        value = getattr(spec, field)
        if _exists(root / value) and not _is_dir(root / value):
            raise ConfigurationError(
                f"{_at_key(config_file, field)}: {field}: {value!r} is a file; name the folder "
                f"holding the {'descriptors' if field == 'products' else '.avsc schemas'}"
            )
    policies = root / spec.policies
    if _is_dir(policies):
        raise ConfigurationError(
            f"{_at_key(config_file, 'policies')}: policies: {spec.policies!r} is a folder; "
            f"name the policy file (e.g. mesh-policies.yaml)"
        )
    if "policies" in spec.model_fields_set and not _exists(policies):
        raise ConfigurationError(
            f"{_at_key(config_file, 'policies')}: policies: {spec.policies!r} does not exist; "
            f"create it, fix the name, or remove the line to use the built-in policies"
        )


def _at_key(config_file: Path, key: str) -> str:
    """``mesh.yaml:N``, N the line of the top-level ``key`` (just the file when it is not
    written there: a default)."""
    try:
        node = yaml.compose(_read_project_file(config_file))
    except (ConfigurationError, yaml.YAMLError, RecursionError):
        return str(config_file)
    written = isinstance(node, yaml.MappingNode) and any(
        isinstance(name, yaml.ScalarNode) and name.value == key for name, _value in node.value
    )
    return f"{config_file}:{line_of(node, [key])}" if written else str(config_file)


def _read_project_file(config_file: Path) -> str:
    """The text of ``mesh.yaml``, refusing what cannot be one (too large, unreadable, not
    UTF-8) before YAML is asked to parse it."""
    try:
        with config_file.open("rb") as handle:
            data = handle.read(MAX_PROJECT_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"{config_file}: cannot read: {exc.strerror or exc}; check its permissions"
        ) from exc
    if len(data) > MAX_PROJECT_FILE_BYTES:
        raise ConfigurationError(
            f"{config_file}: larger than {MAX_PROJECT_FILE_BYTES // 1024} KiB, which no "
            f"{PROJECT_FILE} needs; it should name only the domains and folders"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{config_file}: cannot read: {not_utf8(exc)}; save it as UTF-8"
        ) from exc


def _project(root: Path, spec: ProjectFile) -> MeshProject:
    descriptors_dir = root / spec.products
    domains = spec.domains
    if domains is None:
        domains = tuple(
            sorted(
                d.parent.name
                for d in descriptors_dir.glob("*/products")
                if d.is_dir() and not is_hidden(d.parent.name)
            )
            if _is_dir(descriptors_dir)
            else ()
        )
        for domain in domains:
            problem = domain_name_problem(domain)
            if problem is not None:
                raise ConfigurationError(
                    f"{_shown(descriptors_dir / domain)}: the folder names a domain: {problem}"
                )
    return MeshProject(
        root=root,
        domains=domains,
        descriptors_dir=descriptors_dir,
        schemas_dir=root / spec.schemas,
        policies_file=root / spec.policies,
        runnables=spec.runnables,
        name=spec.name,
    )


def _shown(path: Path | str) -> str:
    """A path for a message: a name of thousands of characters would bury the message, and
    control characters (a terminal escape) are shown escaped, not sent to the terminal."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= 160 else f"{text[:157]}…"


def _resolved(path: Path, label: str) -> Path:
    """``path`` absolute with symlinks followed; one that cannot be is one line, not a
    traceback: a symlink loop (RuntimeError on Python 3.11), a name too long (OSError),
    a NUL byte (ValueError)."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, RuntimeError):
            problem = "a symlink loop"
        elif isinstance(exc, OSError):
            problem = exc.strerror or str(exc)
        else:
            problem = "a NUL character in the name"
        raise ProjectNotFoundError(
            f"{label}={_shown(path)}: cannot use it as a folder ({problem}); name the "
            f"folder holding {PROJECT_FILE} with --project DIR or {ROOT_SETTING}"
        ) from exc


def _present(path: Path) -> bool:
    """Whether anything at all is named ``path`` (a broken or looping symlink too); True
    when no permission lets the OS say, so that the reader names why it cannot read."""
    try:
        path.lstat()
    except PermissionError:
        return True
    except (OSError, ValueError):  # none, or a name too long to be one
        return False
    return True


def _is_symlink(path: Path) -> bool:
    try:
        return path.is_symlink()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that answers False, rather than raising, for a name too long or a
    folder that cannot be searched: such a path holds no project file we can use."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _working_directory(cwd: Path | None) -> Path:
    """``cwd`` or the process's working directory, resolved; a working directory deleted
    under the shell is one line naming the fix."""
    if cwd is None:
        try:
            cwd = Path.cwd()
        except OSError as exc:
            raise ProjectNotFoundError(
                f"the working directory is gone ({exc.strerror}); cd into the project, or "
                f"name it with --project DIR or {ROOT_SETTING}"
            ) from exc
    return _resolved(cwd, "working directory")


def nearest_project_root(start: Path) -> Path | None:
    """The nearest folder from ``start`` upwards holding ``mesh.yaml``, or None. Anything
    named ``mesh.yaml`` counts (a folder, a broken link): :func:`load_project` then says
    what is wrong with it, rather than a project further up being taken instead."""
    start = _resolved(start, "working directory")
    return next((d for d in (start, *start.parents) if _present(d / PROJECT_FILE)), None)


def locate_project(
    explicit: Path | None, settings: MeshSettings, *, cwd: Path | None = None
) -> MeshProject | None:
    """Like :func:`find_project`, but None when no project was named and no ``mesh.yaml``
    is around: the SDK then resolves products through the registry only (a service in a
    repository that holds no descriptors)."""
    if explicit is None and settings.project_root is None:
        root = nearest_project_root(_working_directory(cwd))
        return load_project(root) if root is not None else None
    return find_project(explicit, settings, cwd=cwd)


def find_project(
    explicit: Path | None,
    settings: MeshSettings,
    *,
    cwd: Path | None = None,
    named_by: str | None = "--project DIR",
    explicit_as: str = "--project",
) -> MeshProject:
    """The project: ``explicit`` (``--project``), else ``settings.project_root``
    (``MESH_PROJECT_ROOT``), else the nearest ``mesh.yaml`` upwards from ``cwd``.
    ``named_by`` is how the command lets a user name the folder, for the error when none is
    found (None: only ``MESH_PROJECT_ROOT``, e.g. for a processor worker, which has no such
    flag); ``explicit_as`` names where ``explicit`` came from (an argument, for some)."""
    if explicit is not None:
        return _load_named(explicit, explicit_as)
    if settings.project_root is not None:
        return _load_named(settings.project_root, ROOT_SETTING)
    start = _working_directory(cwd)
    root = nearest_project_root(start)
    if root is None:
        raise ProjectNotFoundError(
            f"no {PROJECT_FILE} in {start} or any folder above it; run inside a project, "
            f"create one with `mesh init DOMAIN`, or name it with "
            + (f"{named_by} or {ROOT_SETTING}" if named_by else ROOT_SETTING)
        )
    return load_project(root)


def _folder(root: object, source: str) -> Path:
    """``root`` as a Path: the SDK's ``root=`` may be a str; anything else is refused."""
    if not isinstance(root, (str, os.PathLike)):
        raise ProjectNotFoundError(
            f"{source} must name a folder (a str or a Path), got {type(root).__name__}"
        )
    return Path(root)


def _load_named(given: Path | str, source: str) -> MeshProject:
    root = _folder(given, source)
    folder = _resolved(root, source)
    shown = f"{source}={_shown(root)}"
    if not root.expanduser().is_absolute():
        shown += f" (relative to the working directory: {_shown(folder)})"
    if folder.name == PROJECT_FILE and _is_file(folder):
        raise ProjectNotFoundError(
            f"{shown} is the project file itself; point {source} at its folder "
            f"{_shown(folder.parent)}"
        )
    if not _present(folder / PROJECT_FILE):
        raise ProjectNotFoundError(
            f"{shown}: no {PROJECT_FILE} there; point {source} at the folder holding "
            f"{PROJECT_FILE}, or create a project with `mesh init DOMAIN {_shown(root)}`"
        )
    return load_project(folder)  # names a mesh.yaml that is a folder, a loop, ...


def resolve_product(
    name: str | DataProduct, *, project: MeshProject | None, registry: ProductSource | None
) -> DataProduct:
    """A product by name: the project's own descriptor first, else the registry's catalog
    (another domain's product needs no local YAML). ``project=None``: the registry only."""
    if project is None:
        return _resolve_in(name, registry=registry, root=None)
    return _resolve_in(
        name, registry=registry, root=project.root, products_dir=project.descriptors_dir
    )
