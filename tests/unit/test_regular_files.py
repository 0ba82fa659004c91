"""Files a user names (schemas, `publish --schema`, registry credentials) are read only when
they are regular files: a FIFO named like one is an error naming it, never a hang (reading a
pipe with no writer blocks for ever)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_stream.cli.main import run
from mesh_stream.cli.publish import _read_schema
from mesh_stream.descriptor import load_descriptor
from mesh_stream.errors import ConfigurationError, SchemaError
from mesh_stream.files import NotRegularFileError, read_regular_bytes, read_regular_text
from mesh_stream.registration import schema_text
from mesh_stream.schema.codec import load_schema_file

REPO = Path(__file__).resolve().parents[2]
FIFO = "not a regular file but a named pipe (FIFO)"

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "order-placed.avsc"
    os.mkfifo(path)  # no writer: opening it to read would block
    return path


def test_the_readers_refuse_a_fifo_and_a_folder_and_read_a_link_to_a_file(
    tmp_path: Path, fifo: Path
) -> None:
    for read in (read_regular_text, read_regular_bytes):
        with pytest.raises(NotRegularFileError) as refused:
            read(fifo)
        assert (refused.value.strerror, refused.value.filename) == (FIFO, str(fifo))
        with pytest.raises(NotRegularFileError, match="but a folder"):
            read(tmp_path)
    real = tmp_path / "real.avsc"
    real.write_text('{"type": "string"}\r\n', encoding="utf-8")
    link = tmp_path / "link.avsc"
    link.symlink_to(real)
    assert read_regular_text(link) == '{"type": "string"}\n'  # as read_text: newlines read
    assert read_regular_bytes(link) == b'{"type": "string"}\r\n'


def test_a_schema_file_that_is_a_fifo_or_not_utf8_is_named(tmp_path: Path, fifo: Path) -> None:
    with pytest.raises(SchemaError) as refused:
        load_schema_file(fifo)
    assert str(refused.value) == f"{fifo}: cannot read schema file: {FIFO}"
    latin = tmp_path / "latin.avsc"
    latin.write_bytes('{"type": "string", "doc": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(SchemaError) as refused:
        load_schema_file(latin)
    assert str(refused.value) == (
        f"{latin}: schema file is not UTF-8 text (byte 0xe9 at offset 30); save it as UTF-8"
    )


def test_a_product_whose_schema_is_a_fifo_is_refused_naming_the_descriptor_field(
    tmp_path: Path,
) -> None:
    product = load_descriptor(REPO / "domains/orders/products/order-placed.yaml")
    (tmp_path / product.schema_file).parent.mkdir(parents=True)
    os.mkfifo(tmp_path / product.schema_file)
    with pytest.raises(SchemaError) as refused:
        schema_text(product, tmp_path)
    assert str(refused.value).startswith(
        f"orders.order-placed: schema: cannot read {tmp_path / product.schema_file}: {FIFO}; "
    )
    (tmp_path / product.schema_file).unlink()
    (tmp_path / product.schema_file).write_bytes(b'{"doc": "\xff"}')
    with pytest.raises(SchemaError, match=r"is not UTF-8 text \(byte 0xff at offset 9\)"):
        schema_text(product, tmp_path)


def test_publish_schema_given_as_a_fifo_is_refused(fifo: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        _read_schema(fifo)
    assert str(refused.value) == f"{fifo}: --schema cannot be read: {FIFO}"


def test_registry_credentials_given_as_a_fifo_are_refused(
    fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["registry", "serve", "--port", "0", "--credentials", str(fifo)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {fifo} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE): cannot read registry "
        f"credentials ({FIFO})"
    )


# -- writing: whole or not at all (an export campaign's findings) -------------------------
def test_a_written_document_replaces_a_symlink_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    from mesh_stream.files import write_replacing

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "asyncapi-orders.yaml"
    link.symlink_to(victim)
    write_replacing(link, "asyncapi: 3.0.0\n")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink()
    assert link.read_text() == "asyncapi: 3.0.0\n"
    assert oct(link.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asyncapi-orders.yaml", "victim.txt"]


def test_an_export_cut_short_leaves_no_truncated_document_and_names_the_file(
    tmp_path: Path,
) -> None:
    """With a file size limit (as with a full disk), the export wrote the first 6 KiB of a
    document, which still loaded as YAML, and said only `File too large (OSError)`."""
    script = f"""
import resource, signal, sys
from pathlib import Path
from mesh_stream.cli.export.common import write_documents
from mesh_stream.errors import ConfigurationError
out = Path({str(tmp_path)!r})
(out / "asyncapi-orders.yaml").write_text("old: document\\n")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (6144, 6144))
channels = {{f"c{{i}}": {{"address": "x" * 40}} for i in range(400)}}
big = {{"asyncapi": "3.0.0", "channels": channels}}
try:
    write_documents([("asyncapi-small.yaml", {{"a": 1}}), ("asyncapi-orders.yaml", big)], out)
except ConfigurationError as exc:
    print(exc)
    sys.exit(3)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(
        f"{tmp_path / 'asyncapi-orders.yaml'}: cannot write it: File too large; the file is "
        "as it was (1 document(s) before it were written whole)"
    ), done.stdout
    assert (tmp_path / "asyncapi-orders.yaml").read_text() == "old: document\n"
    assert (tmp_path / "asyncapi-small.yaml").read_text() == "a: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "asyncapi-orders.yaml",
        "asyncapi-small.yaml",
    ]
