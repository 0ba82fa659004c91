"""Descriptor discovery (`descriptor_files`, the one place every command finds descriptors):
a folder on the way that cannot be read is an error naming it and the OS's reason, never a
domain silently left out of lint, plan or apply."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream import descriptor
from mesh_stream.cli.main import cli
from mesh_stream.descriptor import descriptor_files
from mesh_stream.errors import DescriptorError

GOOD = Path(__file__).resolve().parent / "governance" / "fixtures" / "good"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(GOOD, root)
    (root / "domains" / "__pycache__").mkdir()  # a folder without products/: not a domain
    (root / "domains" / "runnables.py").write_text("")  # a file beside the domains
    return root


def test_every_descriptor_is_found_yaml_first(repo: Path) -> None:
    (repo / "domains/shop/products/extra.yml").write_text("name: shop.extra\n")
    found = [p.relative_to(repo / "domains").as_posix() for p in descriptor_files(repo / "domains")]
    assert found == [
        "insights/products/customer-summary.yaml",
        "people/products/customer.yaml",
        "shop/products/order-placed.yaml",
        "shop/products/extra.yml",
    ]
    assert descriptor_files(repo / "missing") == []


def replace_products_folder(repo: Path, how: str) -> Path:
    folder = repo / "domains/shop/products"
    shutil.rmtree(folder)
    if how == "dangling symlink":
        folder.symlink_to(repo / "nowhere")
    else:
        os.mkfifo(folder)
    return folder


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("dangling symlink", "cannot read the folder (a broken symlink)"),
        ("fifo", "not a folder, so no descriptor in it is seen"),
    ],
)
def test_a_products_folder_that_is_not_a_readable_folder_is_an_error(
    repo: Path, how: str, reason: str
) -> None:
    folder = replace_products_folder(repo, how)
    with pytest.raises(DescriptorError) as caught:
        descriptor_files(repo / "domains")
    assert str(caught.value).startswith(f"{folder}: {reason}")


@pytest.mark.parametrize("unreadable", ["domains/shop/products", "domains/shop", "domains"])
def test_a_folder_that_cannot_be_listed_is_an_error_naming_it_and_the_os_reason(
    repo: Path, monkeypatch: pytest.MonkeyPatch, unreadable: str
) -> None:
    """chmod 000 (as root, permissions do not bite: the listing fails the way it would)."""
    listing, stat = os.scandir, Path.stat
    denied = repo / unreadable

    def scandir(path: Path) -> object:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    def path_stat(self: Path, **kwargs: bool) -> os.stat_result:
        if self.parent == denied:  # a folder without x: nothing inside it can be looked at
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, **kwargs)

    monkeypatch.setattr(descriptor.os, "scandir", scandir)
    monkeypatch.setattr(Path, "stat", path_stat)
    with pytest.raises(DescriptorError) as caught:
        descriptor_files(repo / "domains")
    shown = repo / unreadable if unreadable != "domains/shop" else repo / "domains/shop/products"
    assert f"{shown}: cannot read the folder (Permission denied)" in str(caught.value)


def test_lint_reports_an_unreadable_domain_folder_and_fails(repo: Path) -> None:
    """The campaign's case: `mesh lint` said 0 errors for a project missing a domain."""
    folder = replace_products_folder(repo, "dangling symlink")
    result = CliRunner().invoke(cli, ["lint", str(repo)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DescriptorError)
    assert f"{folder}: cannot read the folder" in str(result.exception)


def test_the_projects_descriptors_come_through_the_same_check(repo: Path) -> None:
    from mesh_stream.project import load_project

    (repo / "mesh.yaml").write_text("domains: [shop, insights, people]\n")
    replace_products_folder(repo, "fifo")
    with pytest.raises(DescriptorError, match="domains/shop/products: not a folder"):
        load_project(repo).descriptors()


def test_a_domain_folder_that_is_a_broken_symlink_is_an_error_and_lint_fails(repo: Path) -> None:
    """h36: a domain kept elsewhere behind a link to nothing was left out, lint exit 0."""
    shutil.rmtree(repo / "domains/shop")
    link = repo / "domains/shop"
    link.symlink_to(repo.parent / "elsewhere" / "shop")
    (repo / "domains/notes.md").symlink_to(repo / "domains/runnables.py")  # a file: skipped
    (repo / "domains/README.md").symlink_to(repo / "gone.md")  # a file's name: skipped
    with pytest.raises(DescriptorError) as caught:
        descriptor_files(repo / "domains")
    assert str(caught.value) == (
        f"{link}: cannot read the folder (a broken symlink), so the descriptors of domain "
        f"'shop' are not seen; fix the link (or remove it)"
    )
    result = CliRunner().invoke(cli, ["lint", str(repo)])
    assert result.exit_code == 1
    assert f"{link}: cannot read the folder (a broken symlink)" in str(result.exception)
    # a name no domain may have is still no file's: reported, not skipped (h40)
    link.unlink()
    odd = repo / "domains/Billing_v2"
    odd.symlink_to(repo.parent / "elsewhere" / "billing")
    with pytest.raises(DescriptorError, match="Billing_v2: cannot read the folder"):
        descriptor_files(repo / "domains")


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        (
            "orders.order-placed.dlq",
            "; that is the dead-letter topic of product orders.order-placed: `mesh tail "
            "orders.order-placed --dead-letters` reads it",
        ),
        (
            "orders.order-placed.v2.dlq",
            "; that is the dead-letter topic of product orders.order-placed (major 2): `mesh "
            "tail orders.order-placed --major 2 --dead-letters` reads it",
        ),
        (
            "orders.order-placed.v1",
            "; that is the topic of product orders.order-placed: name the product",
        ),
        (
            "orders.order-placed.v3",
            "; that is the topic of product orders.order-placed (major 3): name the product, "
            "with major 3 (`--major 3`, `major=3`)",
        ),
        ("orders.order-placed.v0", ""),
        ("orders.order-placed.v01", ""),
        ("orders", ""),
        ("orders.order-placed.extra", ""),
    ],
)
def test_a_topic_given_for_a_product_name_is_named_as_such(given: str, hint: str) -> None:
    """h37: `mesh tail teamx.example-event.dlq` said only that it is no product name."""
    from mesh_stream.descriptor import resolve_product
    from mesh_stream.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as refused:
        resolve_product(given, registry=None, root=None)
    assert str(refused.value) == (
        f"{given!r} is not a product name `<domain>.<product>` (e.g. orders.order-placed){hint}"
    )
    # the CLI's own check of a NAME argument says the same (mesh products show/lineage)
    shown = CliRunner().invoke(cli, ["products", "show", given])
    assert shown.exit_code == 2
    assert f"orders.order-placed){hint}; `mesh products list` shows" in " ".join(
        shown.stderr.split()
    )
