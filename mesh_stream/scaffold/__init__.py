"""`mesh init DOMAIN [DIR]`: a new domain repository from templates.

The templates are package data (``mesh_stream/scaffold/templates``, read through
:mod:`importlib.resources`, so they work from a wheel or a zip). Each holds ``__DOMAIN__``
(and ``__NAMESPACE__``, the domain as an Avro namespace) where the domain's name goes, and
``__VERSION__`` for the installed mesh-stream version; nothing else is substituted, so
GitHub's ``${{ }}`` and Python's braces pass through untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

from mesh_stream.descriptor import NAME_PART
from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.files import write_replacing
from mesh_stream.project import domain_name_problem, load_project

DOMAIN_NAME = re.compile(rf"^{NAME_PART}\Z")

#: template file -> where it goes in the new repository (``{domain}`` is the domain).
LAYOUT: dict[str, str] = {
    "mesh.yaml.tmpl": "mesh.yaml",
    "README.md.tmpl": "README.md",
    "descriptor.yaml.tmpl": "domains/{domain}/products/example-event.yaml",
    "schema.avsc.tmpl": "schemas/{domain}/example-event.avsc",
    "publisher.py.tmpl": "domains/{domain}/publisher.py",
    "processor.py.tmpl": "domains/{domain}/processors/example_processor.py",
    "test_lint.py.tmpl": "tests/test_lint.py",
    "workflow.yml.tmpl": ".github/workflows/mesh.yml",
}

PLACEHOLDER = re.compile(r"__[A-Z]+__")


@dataclass(frozen=True)
class Scaffold:
    """What :func:`scaffold` wrote: the project root and its files (relative, sorted)."""

    root: Path
    domain: str
    files: tuple[str, ...]

    @property
    def product(self) -> str:
        return f"{self.domain}.example-event"


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot name a domain (None when it can): mesh.yaml's rule
    (:func:`mesh_stream.project.domain_name_problem`), with the pattern spelled out."""
    if not DOMAIN_NAME.match(domain):
        return (
            f"{domain[:40]!r} is not a domain name: lowercase letters and digits, `-` between "
            f"words, starting with a letter (e.g. inventory, order-fulfilment)"
        )
    return domain_name_problem(domain)


def _installed_version() -> str:
    """The mesh-stream version making the repository: its CI installs that one, not
    whatever a package index calls mesh-stream later."""
    try:
        return version("mesh-stream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def render(template: str, domain: str) -> str:
    """A template's text with the domain put in; a leftover placeholder is a bug."""
    text = files(__package__).joinpath("templates", template).read_text(encoding="utf-8")
    text = text.replace("__NAMESPACE__", f"com.example.{domain.replace('-', '_')}")
    text = text.replace("__DOMAIN__", domain)
    text = text.replace("__VERSION__", _installed_version())
    leftover = PLACEHOLDER.search(text)
    if leftover is not None:
        raise ConfigurationError(f"template {template}: unknown placeholder {leftover.group()}")
    return text


def _cannot_write(target: Path, exc: OSError, written: Sequence[str] = ()) -> ConfigurationError:
    """The one message for a ``target`` the project cannot be written into (a parent that
    cannot be searched, a name too long, a parent that is a file, ...)."""
    failed = exc.filename if exc.filename is not None else target
    return ConfigurationError(
        f"cannot write the new project into {target}: {failed}: "
        f"{(exc.strerror or str(exc)).lower()}; pick a folder that can be created and "
        f"written" + (f" (written before it: {', '.join(written)})" if written else "")
    )


def _unexpected_entries(target: Path) -> list[str]:
    dangling = False
    with contextlib.suppress(OSError):  # a name too long: said below, as any other
        dangling = target.is_symlink() and not target.exists()
    if dangling:  # "file exists" would not say why
        try:
            points_to = os.readlink(target)
        except OSError:
            points_to = "?"
        kind = "a symlink"
        try:
            target.resolve(strict=True)
        except RuntimeError:
            kind = "a symlink loop"
        except OSError:
            kind = f"a broken symlink (to {points_to}, which does not exist)"
        raise ConfigurationError(f"{target} is {kind}; pick another DIR or remove the link")
    try:
        if not target.exists():
            return []
        if not target.is_dir():
            raise ConfigurationError(f"{target} exists and is not a folder; pick another DIR")
        return sorted(entry.name for entry in target.iterdir())
    except OSError as exc:  # e.g. a parent that cannot be searched, a name too long
        raise _cannot_write(target, exc) from exc


def _refuse_another_project(mesh_yaml: Path, domain: str) -> None:
    """Refuse to write a new project's ``mesh.yaml`` over one naming other domains: their
    products would no longer be part of the project (``--force`` or not)."""
    try:
        domains = load_project(mesh_yaml.parent).domains
    except MeshError:  # not a project mesh-stream can read: --force decides, as for any file
        return
    others = [name for name in domains if name != domain]
    if others:
        raise ConfigurationError(
            f"{mesh_yaml} is the project of domain(s) {', '.join(others)}; `mesh init` would "
            f"write a new mesh.yaml naming only {domain} over it. Pick another DIR for "
            f"{domain}'s repository, or add {domain} to that mesh.yaml's domains by hand"
        )


def scaffold(domain: str, target: Path, *, force: bool = False) -> Scaffold:
    """Write a new domain repository for ``domain`` into ``target``.

    ``target`` must be missing or empty unless ``force``; with ``force`` the template files
    overwrite files of the same name and everything else in ``target`` stays.
    """
    problem = domain_problem(domain)
    if problem is not None:
        raise ConfigurationError(problem)
    present = _unexpected_entries(target)
    if "mesh.yaml" in present:
        _refuse_another_project(target / "mesh.yaml", domain)
    if present and not force:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ConfigurationError(
            f"{target} is not empty ({shown}); pick a new or empty DIR, or pass --force to "
            f"write the template files over it"
        )
    written = []
    try:
        for template, destination in LAYOUT.items():
            relative = destination.format(domain=domain)
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_replacing(path, render(template, domain))  # never through a symlink
            written.append(relative)
    except OSError as exc:  # e.g. a parent that is a file, or a folder that cannot be made
        raise _cannot_write(target, exc, written) from exc
    return Scaffold(target.resolve(), domain, tuple(sorted(written)))
