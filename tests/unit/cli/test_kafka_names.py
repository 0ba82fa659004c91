"""Kafka names and files the commands hand to Kafka are checked before anything connects:
`mesh tail --group`, `mesh registry serve --topic/--writer-id/--credentials` (and their
MESH_* settings), `mesh tail --timeout`, `mesh bench --output`. Each bad value ends in one
clean line naming the option or setting and the rule, never a traceback, a process aborted
inside librdkafka or a silent exit 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_stream.cli import bench as bench_cli
from mesh_stream.cli import tail as tail_cli
from mesh_stream.cli.main import run
from mesh_stream.registry.service import server as registry_server

REPO = Path(__file__).resolve().parents[3]
HUGE = "x" * 100_000
BAD_UTF8 = b"orders.\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of argv


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


NOBODY = f"127.0.0.1:{_closed_port()}"


class ReachedWork(BaseException):
    """The command got past its checks to connecting (which must not happen here)."""


def _reached(*_args: object, **_kwargs: object) -> None:
    raise ReachedWork


@pytest.fixture(autouse=True)
def nothing_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", NOBODY)
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://{NOBODY}")
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(REPO)
    # The first step of real work of each command: reaching it fails the test.
    monkeypatch.setattr(tail_cli, "registry_for", _reached)
    monkeypatch.setattr(registry_server, "bind_listener", _reached)
    monkeypatch.setattr(registry_server, "build_registry", _reached)
    monkeypatch.setattr(bench_cli, "_scale_sizes", _reached)


def _mesh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of `mesh ARGS` run in-process, as `main()` runs it."""
    status = run(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err


def _last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no error message"
    return lines[-1]


# -- mesh tail ----------------------------------------------------------------------------

TAIL = ["tail", "orders.order-placed", "--max", "1"]


@pytest.mark.parametrize(
    ("group", "problem"),
    [
        ("", "'' is empty"),
        ("a\x00b", "'a\\x00b' contains the unprintable character '\\x00'"),
        ("a\x1bb", "'a\\x1bb' contains the unprintable character '\\x1b'"),
        (BAD_UTF8, "is not valid UTF-8 text"),
        (HUGE, "... (100000 characters) has 100000 characters; at most 249 are allowed"),
    ],
    ids=["empty", "nul", "escape", "not-utf8", "100k"],
)
def test_tail_refuses_a_bad_group_naming_it_and_the_rule(
    group: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _mesh([*TAIL, "--timeout", "1", "--group", group], capsys)
    assert status == 2
    line = _last_line(err)
    assert line.startswith("Error: Invalid value for '--group': ")
    assert problem in line
    assert line.endswith("(non-empty printable text, at most 249 characters)")
    assert len(err) < 1000  # the 100k id is not echoed whole


@pytest.mark.parametrize("value", ["nan", "inf", "Infinity", "1e400", "NaN"])
def test_tail_refuses_a_timeout_that_never_ends(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _mesh([*TAIL, "--timeout", value], capsys)
    assert status == 2
    assert (
        _last_line(err)
        == f"Error: Invalid value for '--timeout': {value!r} is not a finite number."
    )


def test_tail_with_a_100k_group_from_a_real_shell_fails_instead_of_exiting_0(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mesh_stream.cli.main", *TAIL, "--timeout", "1", "--group", HUGE],
        cwd=REPO,
        env={
            "PATH": str(tmp_path),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "MESH_BOOTSTRAP_SERVERS": NOBODY,
            "MESH_REGISTRY_URL": f"http://{NOBODY}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "Error: Invalid value for '--group': " in done.stderr
    assert "has 100000 characters; at most 249 are allowed" in done.stderr


# -- mesh registry serve ------------------------------------------------------------------

SERVE = ["registry", "serve", "--port", "0", "--open-writes"]


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--topic", "", "'' is empty"),
        ("--topic", "reg\x00istry", "contains '\\x00'; Kafka allows only letters"),
        ("--topic", BAD_UTF8, "contains '\\udcff'; Kafka allows only letters"),
        ("--topic", "my topic", "contains ' '; Kafka allows only letters"),
        ("--topic", "..", "is '.' or '..', which Kafka refuses"),
        ("--topic", HUGE, "has 100000 characters; Kafka allows at most 249"),
        ("--writer-id", "", "'' is empty"),
        ("--writer-id", "w\x00", "contains the unprintable character '\\x00'"),
        ("--writer-id", BAD_UTF8, "is not valid UTF-8 text"),
        ("--writer-id", HUGE, "has 100000 characters; at most 249 are allowed"),
    ],
    ids=[
        "topic-empty",
        "topic-nul",
        "topic-not-utf8",
        "topic-blank",
        "topic-dotdot",
        "topic-100k",
        "writer-empty",
        "writer-nul",
        "writer-not-utf8",
        "writer-100k",
    ],
)
def test_serve_refuses_a_bad_topic_or_writer_id_before_connecting(
    option: str, value: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _mesh([*SERVE, option, value], capsys)
    assert status == 2
    line = _last_line(err)
    assert line.startswith(f"Error: Invalid value for '{option}': ")
    assert problem in line
    assert line.endswith("at most 249 characters)")
    assert len(err) < 1000


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "MESH_REGISTRY_TOPIC",
            "reg/istry",
            "  MESH_REGISTRY_TOPIC='reg/istry': contains '/'; Kafka allows only "
            "letters a-z A-Z, digits, '.', '_' and '-' (e.g. _mesh_registry)",
        ),
        (
            "MESH_REGISTRY_TOPIC",
            "t" * 250,
            f"  MESH_REGISTRY_TOPIC={repr('t' * 250)[:80]}... (252 characters): "
            f"has 250 characters; Kafka allows "
            f"at most 249 (e.g. _mesh_registry)",
        ),
        (
            "MESH_REGISTRY_WRITER_ID",
            "",
            "  MESH_REGISTRY_WRITER_ID='': is empty (e.g. mesh-registry-writer)",
        ),
        (
            "MESH_REGISTRY_WRITER_ID",
            "a\tb",
            "  MESH_REGISTRY_WRITER_ID='a\\tb': contains the unprintable character "
            "'\\t'; use printable characters only (e.g. mesh-registry-writer)",
        ),
    ],
    ids=["topic-slash", "topic-250", "writer-empty", "writer-tab"],
)
def test_serve_names_a_bad_registry_setting(
    variable: str,
    value: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    status, err = _mesh(SERVE, capsys)
    assert status == 2
    assert err.splitlines()[-2:] == ["error: invalid MESH_* environment setting:", expected]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b"\xff\xfe\x00\x01binary\x00\x80" * 64,
            "registry credentials are UTF-16 text (it begins with a UTF-16 byte-order mark), "
            "not UTF-8",
        ),
        (b"admin: caf\xe9\n", "registry credentials are not UTF-8 text (byte 0xe9 at offset 10)"),
        (b"admin: s3cret\x00\n", "registry credentials contain a NUL byte (offset 13)"),
    ],
    ids=["binary", "latin-1", "nul"],
)
@pytest.mark.parametrize("given", ["flag", "environment"])
def test_serve_refuses_a_credentials_file_that_is_not_text(
    content: bytes,
    problem: str,
    given: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_bytes(content)
    args = ["registry", "serve", "--port", "0"]
    if given == "flag":
        args += ["--credentials", str(creds)]
    else:
        monkeypatch.setenv("MESH_REGISTRY_CREDENTIALS_FILE", str(creds))
    status, err = _mesh(args, capsys)
    assert status == 1
    assert err.startswith(
        f"error: {creds} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE): {problem}"
    )
    assert err.count("\n") == 1


def test_serve_reports_missing_credentials_before_taking_the_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, err = _mesh(["registry", "serve", "--port", "0"], capsys)
    assert status == 1
    assert err.startswith("error: the registry needs credentials: set MESH_REGISTRY_CREDENTIALS=")


@pytest.mark.parametrize(
    "argv",
    [
        [b"--topic", b"orders.\xff"],
        [b"--writer-id", b"w\xff"],
    ],
    ids=["topic", "writer-id"],
)
def test_serve_with_non_utf8_names_from_a_real_shell(argv: list[bytes], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"mesh_stream.cli.main", *map(str.encode, SERVE), *argv],
        cwd=REPO,
        env={
            "PATH": str(tmp_path),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "MESH_BOOTSTRAP_SERVERS": NOBODY,
        },
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert "Traceback" not in err
    assert f"Error: Invalid value for '{argv[0].decode()}': " in err
    assert "registry listening" not in err


# -- mesh bench ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   "])
def test_bench_refuses_an_empty_output_folder(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _mesh(["bench", "--output", value], capsys)
    assert status == 2
    assert _last_line(err) == (
        f"Error: Invalid value for --output: {value!r} is empty; give the folder for the "
        f"report, e.g. bench-results"
    )


def test_serve_names_a_credentials_file_its_parser_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = tmp_path / "credentials.yaml"
    creds.write_text("admin: " + "9" * 5000 + "\n")
    status, err = _mesh(["registry", "serve", "--port", "0", "--credentials", str(creds)], capsys)
    assert status == 1
    assert err.startswith(
        f"error: {creds} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE): registry credentials "
        f"cannot be read (ValueError: Exceeds the limit (4300 digits) for integer string "
        f"conversion"
    )
    assert err.count("\n") == 1
