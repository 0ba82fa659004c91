"""The README is a short front door and every relative link in it and in the docs resolves."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT_BYTES = 12 * 1024

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (links there are examples)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default slugify)."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def relative_links(path: Path) -> list[str]:
    """Every link target in ``path`` that points into the repository (not a URL)."""
    targets = _LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def broken_links(path: Path) -> list[str]:
    """The relative links of ``path`` whose file (or heading anchor) does not exist."""
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.is_file():
            broken.append(f"{target} (no file {destination})")
            continue
        if anchor and destination.suffix == ".md":
            anchors = {_slug(h) for h in _HEADING.findall(_prose_headings(destination))}
            if anchor not in anchors:
                broken.append(f"{target} (no heading #{anchor} in {destination.name})")
    return broken


def _prose_headings(path: Path) -> str:
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def test_readme_is_a_short_front_door() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size} bytes; keep it under {README_LIMIT_BYTES} and move detail to docs/"
    )
    text = README.read_text(encoding="utf-8")
    assert text.index("make demo") < text.index("\n## "), "the two commands come first"
    assert "make test" in text[: text.index("\n## ")]


def test_readme_links_into_the_docs() -> None:
    targets = {t.partition("#")[0] for t in relative_links(README)}
    for page in ("docs/tutorial.md", "docs/getting-started.md", "docs/reference/settings.md"):
        assert page in targets


@pytest.mark.parametrize(
    "path",
    [README, *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [web](https://example.com) "
        "`[code](nowhere.md)` [gone](nowhere.md) [bad anchor](there.md#nope)\n"
        "```\n[example](also-nowhere.md)\n```\n"
    )
    assert [b.split(" ")[0] for b in broken_links(page)] == ["nowhere.md", "there.md#nope"]


def _console_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        commands += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    return commands


def test_tutorial_steps_run_the_domain_workflow_in_order() -> None:
    commands = _console_commands((DOCS / "tutorial.md").read_text(encoding="utf-8"))
    steps = [
        "mesh init ",
        "mesh lint",
        "mesh products plan",
        "mesh products apply",
        "publisher.py",
        "mesh tail inventory.example-event",
        "processor",
        "mesh products lineage",
    ]
    position = 0
    for step in steps:
        found = next((i for i, c in enumerate(commands[position:], position) if step in c), None)
        assert found is not None, f"tutorial: no `{step}` step after {commands[:position]}"
        position = found + 1
