"""What every `mesh export` command shares: which products, from where, written where."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from mesh_stream.cli.options import NonEmptyPath, checked_product_names, checked_registry_url
from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.exports.source import ExportedProduct, RegistrySource
from mesh_stream.files import file_kind, write_replacing
from mesh_stream.project import MeshProject, locate_project
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

F = TypeVar("F", bound=Callable[..., Any])


def product_selection(command: F) -> F:
    """``PRODUCT...``, ``--all``, ``--output DIR`` and ``--registry-url``."""
    command = click.argument(
        "names", metavar="[PRODUCT]...", nargs=-1, callback=checked_product_names
    )(command)
    command = click.option(
        "--all", "export_all", is_flag=True, help="Every product in the registry."
    )(command)
    command = click.option(
        "--output",
        "output",
        type=NonEmptyPath(
            hint="write the documents to standard output", file_okay=False, path_type=Path
        ),
        help="Folder to write one file per document into (created when missing); "
        "without it the documents go to standard output.",
    )(command)
    return click.option(
        "--registry-url",
        callback=checked_registry_url,
        help="Registry base URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
    )(command)


def open_source(settings: MeshSettings, registry_url: str | None) -> RegistrySource:
    """The registry (read with the settings' credential) plus the local project if any."""
    if registry_url:
        settings = settings.model_copy(update={"registry_url": registry_url})
    # a MESH_PROJECT_ROOT that names no project is an error, as for every command (h51:
    # the export went on without it, silently)
    project: MeshProject | None = locate_project(None, settings)
    return RegistrySource(RegistryClient.from_settings(settings), project)


def selected(
    source: RegistrySource, names: Sequence[str], export_all: bool
) -> list[ExportedProduct]:
    """The products named (or every registered one with ``--all``), warnings printed."""
    if export_all and names:
        raise click.UsageError("give product names or --all, not both")
    if not export_all and not names:
        raise click.UsageError("name at least one product, or pass --all")
    wanted = source.names() if export_all else list(dict.fromkeys(names))
    if export_all and not wanted:
        raise ConfigurationError(
            "--all: the registry holds no data product yet, so there is "
            "nothing to export (register some with `mesh products apply`)"
        )
    found = [source.product(name) for name in wanted]
    for item in found:
        for warning in item.warnings:
            click.echo(f"warning: {warning}", err=True)
    drafts = [item.product.name for item in found if not item.registered]
    if drafts and source.project is not None:
        _warn_of_lint_errors(source.project, drafts)
    return found


def _warn_of_lint_errors(project: MeshProject, names: Sequence[str]) -> None:
    """The registry checks a product's policies when it is registered; one exported from its
    local files has not been through that, so lint's errors for it are said here."""
    from mesh_stream.governance.model import Severity
    from mesh_stream.governance.repository import lint_project

    try:
        report = lint_project(project)
    except MeshError:  # a project lint cannot read: `mesh lint` says why
        return
    for name in names:
        errors = [
            v for v in report.violations if v.product == name and v.severity is Severity.ERROR
        ]
        if errors:
            first = errors[0]
            click.echo(
                f"warning: {name}: `mesh lint` finds {len(errors)} error(s) the registry would "
                f"refuse it for, e.g. {first.location}: {first.message}",
                err=True,
            )


def write_documents(
    documents: Iterable[tuple[str, Any]], output: Path | None, *, as_json: bool = False
) -> list[Path]:
    """Each ``(file name, document)`` into ``output`` (YAML unless the name ends in .json or
    .jsonl), or all of them to standard output when ``output`` is None."""
    written: list[Path] = []
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # something else is there (a file, /dev/full, h51)
            kind = file_kind(output.stat().st_mode) if output.exists() else "something else"
            raise ConfigurationError(
                f"--output {output} is {kind}, not a folder: name a folder for the documents, "
                f"or leave --output out to print them"
            ) from exc
        except OSError as exc:
            raise ConfigurationError(
                f"--output {output}: cannot create the folder: {exc.strerror or exc}"
            ) from exc
    for index, (file_name, document) in enumerate(documents):
        text = render(file_name, document, as_json=as_json)
        if output is None:
            # YAML documents after the first need a `---` start, or they read as one mapping
            yaml_text = not (as_json or file_name.endswith((".json", ".jsonl")))
            sys.stdout.write(f"---\n{text}" if index and yaml_text else text)
            continue
        path = output / file_name
        try:
            write_replacing(path, text)
        except OSError as exc:
            raise ConfigurationError(
                f"{path}: cannot write it: {exc.strerror or exc}; the file is as it was "
                f"({len(written)} document(s) before it were written whole)"
            ) from exc
        written.append(path)
        click.echo(f"wrote {path}", err=True)
    return written


def render(file_name: str, document: Any, *, as_json: bool = False) -> str:
    if file_name.endswith(".jsonl"):
        return "".join(json.dumps(item, sort_keys=False) + "\n" for item in document)
    if as_json or file_name.endswith(".json"):
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


__all__ = ["MeshError", "open_source", "product_selection", "render", "selected", "write_documents"]
