"""`mesh products list|show|lineage`: discover data products in the registry."""

from __future__ import annotations

import json
import shutil
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from mesh_stream.descriptor import PRODUCT_NAME, Classification, ProductKind
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
url_option = click.option(
    "--registry-url",
    help="Registry base URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
)


def _client(settings: MeshSettings, url: str | None) -> RegistryClient:
    if url:
        settings = settings.model_copy(update={"registry_url": url})
    return RegistryClient.from_settings(settings)


def _product_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Refuse what cannot be a product name before asking the registry about it."""
    if not PRODUCT_NAME.match(value):
        raise click.BadParameter(
            f"{value!r} is not a product name `<domain>.<product>` (lowercase, e.g. "
            f"orders.order-placed); `mesh products list` shows the registered ones"
        )
    return value


name_argument = click.argument("name", callback=_product_name)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


LIST_HEADERS = ("name", "kind", "classification", "topic", "schema", "description")


def _print_aligned(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest value; only the description is cut to the terminal."""
    table = [LIST_HEADERS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(LIST_HEADERS) - 1)]
    room = shutil.get_terminal_size().columns
    for number, row in enumerate(table):
        line = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False))
        line = f"{line}  {row[-1]}"
        if len(line) > room:
            line = line[: max(room - 1, 0)] + "…"
        click.echo(click.style(line, bold=True) if number == 0 else line)


@click.group()
def products() -> None:
    """Find data products: list and search them, show one, follow its lineage."""


@products.command("list")
@click.option("--domain", help="Only products of this domain.")
@click.option("--tag", help="Only products with this tag.")
@click.option(
    "--classification",
    type=click.Choice([c.value for c in Classification]),
    help="Only products of this classification.",
)
@click.option(
    "--kind", type=click.Choice([k.value for k in ProductKind]), help="Only products of this kind."
)
@click.option(
    "--query", "-q", help="Free text over names, descriptions, tags, field names and field docs."
)
@json_option
@url_option
@click.pass_obj
def list_products(
    settings: MeshSettings,
    domain: str | None,
    tag: str | None,
    classification: str | None,
    kind: str | None,
    query: str | None,
    as_json: bool,
    registry_url: str | None,
) -> None:
    """List registered products (every filter given must match)."""
    with _client(settings, registry_url) as client:
        found = client.list_products(
            domain=domain, tag=tag, classification=classification, kind=kind, query=query
        )
    if as_json:
        _print_json(found)
        return
    rows: list[tuple[str, ...]] = [
        (
            product["name"],
            product["kind"],
            product["classification"],
            product.get("registry", {}).get("topic", ""),
            f"v{product.get('registry', {}).get('schema_version')} "
            f"(id {product.get('registry', {}).get('schema_id')})",
            " ".join(str(product["description"]).split()),
        )
        for product in found
    ]
    if not sys.stdout.isatty():
        # Piped or redirected: one tab-separated line per product, nothing wrapped or cut.
        for row in rows:
            click.echo("\t".join(row))
    else:
        _print_aligned(rows)
    click.echo(f"{len(found)} product(s)", err=True)


@products.command()
@name_argument
@json_option
@url_option
@click.pass_obj
def show(settings: MeshSettings, name: str, as_json: bool, registry_url: str | None) -> None:
    """Show one product's descriptor, topic, schema version and consumers."""
    with _client(settings, registry_url) as client:
        product = client.get_product(name)
    if as_json:
        _print_json(product)
        return
    facts = product.pop("registry", {})
    table = Table("field", "value", show_header=False)
    for key, value in {**product, **facts}.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, shown)
    Console().print(table)


@products.command()
@name_argument
@click.option(
    "--direction",
    type=click.Choice(["upstream", "downstream", "both"]),
    default="both",
    show_default=True,
    help="Inputs (recursively), products built from it, or both.",
)
@json_option
@url_option
@click.pass_obj
def lineage(
    settings: MeshSettings, name: str, direction: str, as_json: bool, registry_url: str | None
) -> None:
    """Show what a product is built from and what is built from it."""
    with _client(settings, registry_url) as client:
        graph = client.lineage(name, direction)
    if as_json:
        _print_json(graph)
        return
    edges = [(e["from"], e["to"]) for e in graph["edges"]]
    root = Tree(f"[bold]{name}[/bold]")
    if direction in ("upstream", "both"):
        branch = root.add("upstream (built from)")
        if not _grow(branch, name, edges, upstream=True, seen=set()):
            branch.add("(none: a source product)")
    if direction in ("downstream", "both"):
        branch = root.add("downstream (feeds)")
        if not _grow(branch, name, edges, upstream=False, seen=set()):
            branch.add("(none yet)")
    Console().print(root)


def _grow(
    node: Tree, name: str, edges: list[tuple[str, str]], *, upstream: bool, seen: set[str]
) -> bool:
    """Add ``name``'s neighbours (recursively) under ``node``; False when it has none."""
    nexts = (
        sorted(a for a, b in edges if b == name)
        if upstream
        else sorted(b for a, b in edges if a == name)
    )
    for item in nexts:
        child = node.add(item)
        if item not in seen:
            seen.add(item)
            _grow(child, item, edges, upstream=upstream, seen=seen)
    return bool(nexts)
