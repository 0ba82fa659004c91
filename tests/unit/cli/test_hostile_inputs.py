"""Every `mesh` command, fed hostile input, answers with one `error:` line (or click's usage
error) and a non-zero status: never a traceback, never the "unexpected" exit of an exception
nothing translated.

The commands are enumerated from the click group, and the hostile values are derived from
each option's type, so a new command or option is covered without touching this file.
Commands that would do real work (start a broker, a registry, `mesh up`, `mesh bench`) meet
an unreachable broker and registry, no `java`/`mvn` on PATH, and sentinels in place of their
work: a hostile input must fail before any of it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from mesh_stream.broker import reachability
from mesh_stream.cli import broker as broker_cli
from mesh_stream.cli import main as cli_main
from mesh_stream.cli.main import INTERNAL_ERROR, cli, run
from mesh_stream.registry.service import server as registry_server
from mesh_stream.up import MeshUp

REPO = Path(__file__).resolve().parents[3]
PRODUCT = "orders.order-placed"
BAD_UTF8 = b"orders.\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of argv


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


NOBODY = f"127.0.0.1:{_closed_port()}"


class ReachedWork(BaseException):
    """A command got past its checks to real work (which the unit test never runs)."""


def _leaves(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_leaves(cli))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    deep = root / "deep.jsonl"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000 + "\n")
    binary = root / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01binary\x00\x80" * 64)
    huge = root / "huge-number.jsonl"
    huge.write_text('{"order_id": ' + "9" * 5000 + "}\n")
    empty = root / "empty.jsonl"
    empty.write_text("")
    (root / "a-directory").mkdir()
    (root / "bin").mkdir()  # PATH without java or mvn
    return {
        "deep": deep,
        "binary": binary,
        "huge": huge,
        "empty": empty,
        "dir": root / "a-directory",
        "missing": root / "does-not-exist",
        "bin": root / "bin",
        "root": root,
    }


@pytest.fixture(autouse=True)
def hostile_world(monkeypatch: pytest.MonkeyPatch, files: dict[str, Path], tmp_path: Path) -> None:
    """Nothing answers, nothing can start; real work is replaced by a sentinel."""
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", NOBODY)
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://{NOBODY}")
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MESH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(files["bin"]))
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 0.3)

    def reached(*_args: object, **_kwargs: object) -> None:
        raise ReachedWork

    monkeypatch.setattr(MeshUp, "run", reached)
    monkeypatch.setattr(registry_server, "build_registry", reached)
    import mesh_stream.bench.run

    monkeypatch.setattr(mesh_stream.bench.run, "run_benchmarks", reached)


def _invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    """(exit status or None when the command reached real work, stdout, stderr)."""
    try:
        status: int | None = run(args)
    except ReachedWork:
        status = None
    out, err = capsys.readouterr()
    return status, out, err


def _assert_clean(args: list[str], status: int | None, out: str, err: str) -> None:
    shown = f"mesh {' '.join(a[:60] for a in args)} -> {status}\n{err[-2000:]}"
    assert "Traceback" not in out + err, shown
    assert status != INTERNAL_ERROR, shown
    assert "error: unexpected" not in err, shown
    if status in (1, 2):
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, shown
        if status == 2:  # click's usage errors, or bad MESH_* settings (our error line)
            assert any(line.startswith(("Error: ", "error: ")) for line in lines), shown


# -- values derived from each parameter's type -------------------------------------------


def _values(param: click.Parameter, files: dict[str, Path]) -> list[tuple[str, str]]:
    """(tag, value) pairs of hostile values for one parameter, by its type and name."""
    kind = param.type
    if isinstance(kind, (click.Path, click.File)):
        kinds = ("missing", "dir", "binary", "deep", "huge", "empty")
        return [(k, str(files[k])) for k in kinds] + [("''", "")]
    if isinstance(kind, click.Choice):
        return [("nope", "nope"), ("''", ""), ("not-utf8", BAD_UTF8)]
    if isinstance(kind, click.types.IntParamType):
        values = ["abc", "-1", "0", "9" * 40, "", "1.5"]
        return [(v[:12] or "''", v) for v in values]
    if isinstance(kind, click.types.FloatParamType):
        values = ["abc", "-1", "0", "nan", "inf", "1e400", ""]
        return [(v or "''", v) for v in values]
    if isinstance(kind, click.types.BoolParamType):
        return []
    name = (param.name or "").lower()
    pairs = [("''", ""), ("nul", "\x00"), ("not-utf8", BAD_UTF8), ("x*100000", "x" * 100_000)]
    if "url" in name:
        urls = ["http://127.0.0.1:99999", "http://x:abc", "ftp://x", "http://[::1"]
        pairs += [(u, u) for u in urls]
    if "bootstrap" in name:
        pairs += [(v, v) for v in ("host:abc", ",,,", "127.0.0.1:99999")]
    if isinstance(param, click.Argument):
        names = ["..", "orders..x", "nobody.nothing", "ORDERS.X"]
        pairs += [(v, v) for v in names] + [("a*5000", "a" * 5000)]
    return pairs


def _base(path: tuple[str, ...], command: click.Command) -> list[str]:
    """Arguments that make the command runnable, so one hostile value is the only fault."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append(PRODUCT if param.name in ("product", "name") else str(REPO))
    if path == ("publish",):
        args += ["--file", str(REPO / "README.md")]
    if path == ("tail",):
        args += ["--timeout", "0.5", "--max", "1"]
    if path == ("registry", "serve"):
        args += ["--port", "0"]
    return args


def _cases(files: dict[str, Path]) -> dict[str, list[str]]:
    """Test id -> mesh arguments: each option and argument of each command, each value."""
    cases: dict[str, list[str]] = {}
    for path, command in COMMANDS:
        base = _base(path, command)
        cases[f"{' '.join(path)} --no-such-option"] = [*path, *base, "--no-such-option"]
        for param in command.params:
            for tag, value in _values(param, files):
                label = f"{' '.join(path)} {param.name}={tag}"
                if isinstance(param, click.Argument):
                    cases[label] = [
                        *path,
                        *(a for a in base if a not in (PRODUCT, str(REPO))),
                        value,
                    ]
                else:
                    cases[label] = [*path, *base, param.opts[0], value]
    return cases


CASES = list(_cases({k: Path(k) for k in ("missing", "dir", "binary", "deep", "huge", "empty")}))


@pytest.mark.parametrize("label", CASES)
def test_a_hostile_value_is_one_clean_line(
    label: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cases(files)[label]
    status, out, err = _invoke(args, capsys)
    _assert_clean(args, status, out, err)


WITH_REGISTRY_URL = [
    (path, command)
    for path, command in COMMANDS
    if any("--registry-url" in param.opts for param in command.params)
]


@pytest.mark.parametrize(
    ("path", "command"), WITH_REGISTRY_URL, ids=[" ".join(p) for p, _ in WITH_REGISTRY_URL]
)
def test_an_empty_registry_url_flag_is_refused_not_the_default(
    path: tuple[str, ...], command: click.Command, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--registry-url "$UNSET"` used to mean MESH_REGISTRY_URL or the default, silently."""
    status, _out, err = _invoke([*path, *_base(path, command), "--registry-url", ""], capsys)
    assert status == 2, err
    assert "Invalid value for '--registry-url': is empty; give the registry's URL" in err


def test_every_number_option_of_every_command_refuses_nan_and_inf() -> None:
    """click's FloatRange lets nan through (its bounds compare false), and some options only
    act past checks this file's runs reach: `products status --watch --interval nan` looked
    live and never refreshed. So every float option must be a FiniteFloatRange."""
    from mesh_stream.cli.options import FiniteFloatRange

    plain = [
        f"mesh {' '.join(path)} {param.opts[0] if param.opts else param.name}"
        for path, command in COMMANDS
        for param in command.params
        if isinstance(param.type, click.types.FloatParamType)
        and not isinstance(param.type, FiniteFloatRange)
    ]
    assert plain == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "MESH_REGISTRY_URL",
            "http://127.0.0.1:99999",
            "  MESH_REGISTRY_URL='http://127.0.0.1:99999': has port '99999', not a "
            "number from 1 to 65535 (e.g. http://127.0.0.1:8081)",
        ),
        (
            "MESH_REGISTRY_URL",
            "http://x:abc",
            "  MESH_REGISTRY_URL='http://x:abc': has port 'abc', not a number from "
            "1 to 65535 (e.g. http://127.0.0.1:8081)",
        ),
        (
            "MESH_BROKER_PORT",
            "99999",
            "  MESH_BROKER_PORT='99999': Input should be less than or equal to 65535",
        ),
    ],
)
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_a_bad_setting_is_named_by_every_command(
    path: tuple[str, ...],
    command: click.Command,
    variable: str,
    value: str,
    expected: str,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    args = [*path, *_base(path, command)]
    status, out, err = _invoke(args, capsys)
    _assert_clean(args, status, out, err)
    assert status == 2
    assert err.splitlines()[-2:] == ["error: invalid MESH_* environment setting:", expected]


ENVIRONMENTS = {
    "data dir is a file": {"MESH_DATA_DIR": "binary"},
    "cache dir is a file": {"MESH_CACHE_DIR": "binary"},
    "credentials file is binary": {"MESH_REGISTRY_CREDENTIALS_FILE": "binary"},
    "governance root missing": {"MESH_GOVERNANCE_ROOT": "missing"},
    "start timeout nan": {"MESH_BROKER_START_TIMEOUT": "nan"},
    "bootstrap servers not UTF-8": {"MESH_BOOTSTRAP_SERVERS": BAD_UTF8},
    "registry url empty": {"MESH_REGISTRY_URL": ""},
    "token without principal": {"MESH_REGISTRY_TOKEN": "x" * 10_000},
}


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_a_hostile_environment_is_one_clean_line(
    path: tuple[str, ...],
    command: click.Command,
    environment: str,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable, value in ENVIRONMENTS[environment].items():
        monkeypatch.setenv(variable, str(files[value]) if value in files else value)
    args = [*path, *_base(path, command)]
    status, out, err = _invoke(args, capsys)
    _assert_clean(args, status, out, err)


# -- the defects the issue found, by name ------------------------------------------------


def test_publish_a_line_giving_a_key_twice_is_a_bad_line() -> None:
    """The last value was published without a word (a campaign); descriptors already
    refuse a key given twice."""
    from mesh_stream.cli import publish as publish_cli

    class Publisher:
        def __init__(self) -> None:
            self.encoder = type("Encoder", (), {"parsed": {}})()

        def prepare(self, _record: object) -> None:
            return None

    huge = b"1" * 5000  # a second reading refuses it first (a review: it ended the run)
    lines = [
        b'{"item_id": "o1", "item_id": "o1-dup"}\n',
        b'{"a": {"b": 1, "b": 2}}\n',
        b'{"m": {"x": 1, "x": 2}, "b": ' + huge + b"}\n",
    ]
    checked = publish_cli._checked(enumerate(lines, 1), "f.jsonl", Publisher())  # type: ignore[arg-type]
    assert list(checked) == [
        (1, 'f.jsonl:1: not valid JSON (column 19): key "item_id" given twice; keep one'),
        (2, 'f.jsonl:2: not valid JSON (column 16): key "b" given twice in a; keep one'),
        (
            3,
            "f.jsonl:3: not valid JSON (column 30): a number of 5000 digits, more than the "
            "4300 Python reads",
        ),
    ]


def test_publish_a_100k_deep_or_huge_number_line_is_a_bad_line_not_a_traceback(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mesh_stream.cli import publish as publish_cli

    class Publisher:
        """Stands in for the SDK publisher: no registry or Kafka needed to parse lines."""

        def __init__(self) -> None:
            self.encoder = type("Encoder", (), {"parsed": {}})()

        def prepare(self, _record: object) -> None:
            return None

    lines = [*files["deep"].read_bytes().splitlines(keepends=True), files["huge"].read_bytes()]
    checked = publish_cli._checked(enumerate(lines, 1), "f.jsonl", Publisher())  # type: ignore[arg-type]
    assert list(checked) == (
        [
            (1, "f.jsonl:1: JSON nested too deeply to read"),
            (
                2,
                "f.jsonl:2: not valid JSON: Exceeds the limit (4300 digits) for integer string "
                "conversion: value has 5000 digits",
            ),
        ]
    )
    monkeypatch.setenv("MESH_REGISTRY_URL", "http://127.0.0.1:99999")
    status, _out, err = _invoke(["publish", PRODUCT, "-f", str(files["deep"])], capsys)
    assert status == 2
    assert "MESH_REGISTRY_URL='http://127.0.0.1:99999': has port '99999'" in err


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://x:abc"])
def test_a_registry_url_flag_with_a_bad_port_names_the_flag(
    url: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ["publish", PRODUCT, "-f", str(files["deep"]), "--registry-url", url],
        ["products", "list", "--registry-url", url],
        ["tail", PRODUCT, "--timeout", "1", "--registry-url", url],
    ):
        status, _out, err = _invoke(args, capsys)
        port = url.rpartition(":")[2]
        assert status == 2, args
        assert err.endswith(
            f"Error: Invalid value for '--registry-url': {url!r} has port {port!r}, not a "
            "number from 1 to 65535 (e.g. http://127.0.0.1:8081)\n"
        ), (args, err)


def test_every_library_error_the_commands_meet_is_translated() -> None:
    import httpx
    import yaml
    from confluent_kafka import KafkaError, KafkaException
    from pydantic import BaseModel, ValidationError

    class Model(BaseModel):
        port: int

    try:
        Model.model_validate({"port": "x"})
    except ValidationError as exc:
        invalid = exc
    try:
        yaml.safe_load("a: [")
    except yaml.YAMLError as exc:
        bad_yaml = exc
    samples: dict[BaseException, str] = {
        RecursionError("maximum recursion depth exceeded"): (
            "the input is nested too deeply to process (RecursionError); flatten it"
        ),
        httpx.InvalidURL("Invalid port: 'abc'"): (
            "registry URL is not usable (Invalid port: 'abc'); fix MESH_REGISTRY_URL or "
            "--registry-url"
        ),
        httpx.ConnectError("refused"): (
            "registry request failed (refused); check MESH_REGISTRY_URL (or "
            "--registry-url) and that the registry runs"
        ),
        KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure")): (
            "Kafka: Broker transport failure; check MESH_BOOTSTRAP_SERVERS (or "
            "--bootstrap-servers) and that the broker runs (`mesh broker status`)"
        ),
        invalid: "invalid Model: port: Input should be a valid integer, unable to parse string "
        "as an integer",
        bad_yaml: "<unicode string>:1: not valid YAML: expected the node content, but found "
        "'<stream end>'",
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"): (
            "text that is not valid Unicode/UTF-8: 'utf-8' codec can't decode byte 0xff in "
            "position 0: invalid start byte (UnicodeDecodeError)"
        ),
        IsADirectoryError(21, "Is a directory", "/tmp"): "/tmp: Is a directory (IsADirectoryError)",
        MemoryError(): "out of memory: the input is too large to process (MemoryError)",
    }
    for exc, message in samples.items():
        assert cli_main.explain(exc) == message
    assert cli_main.explain(ZeroDivisionError("x")) is None


def test_an_untranslated_exception_is_one_line_with_exit_70_and_mesh_debug_shows_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(broker_cli, "local_cluster", broken)
    status, _out, err = _invoke(["broker", "status"], capsys)
    assert (status, err) == (
        INTERNAL_ERROR,
        "error: unexpected ZeroDivisionError: division by zero (a bug in mesh; rerun with "
        "MESH_DEBUG=1 for the traceback and report it)\n",
    )
    assert run(["broker", "status"], debug=True) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("report it)\n")


def test_lint_names_the_file_and_field_of_a_schema_the_specification_forbids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(REPO / "tests/unit/governance/fixtures/good", root)
    schema = root / "schemas/shop/order-placed.avsc"
    schema.write_text(schema.read_text().replace('"name": "order_id"', '"name": "order-id"', 1))
    status, out, _err = _invoke(["lint", str(root)], capsys)
    assert status == 1
    line = next(
        number
        for number, text in enumerate(schema.read_text().splitlines(), start=1)
        if '"order-id"' in text
    )
    assert f"schemas/shop/order-placed.avsc:{line}: error [schema-valid]" in out
    assert (
        'not a valid Avro schema: example.shop.OrderPlaced: field 1: name "order-id" is not a '
        "valid Avro name (a letter or `_`, then letters, digits or `_`)" in out
    )


@pytest.mark.parametrize(
    "argv",
    [
        [b"publish", b"orders.\xff", b"-f", b"README.md"],
        [b"products", b"show", b"orders.\xff"],
        [b"tail", b"\xff\xfe", b"--timeout", b"1"],
    ],
    ids=["publish", "products show", "tail"],
)
def test_arguments_that_are_not_utf8_from_a_real_shell(argv: list[bytes], tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "MESH_BOOTSTRAP_SERVERS": NOBODY,
        "MESH_REGISTRY_URL": f"http://{NOBODY}",
    }
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"mesh_stream.cli.main", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in done.stdout + done.stderr, err
    assert done.returncode in (1, 2), err
    assert "is not a product name `<domain>.<product>`" in err


def test_publish_a_line_longer_than_any_record_is_a_bad_line_read_in_constant_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mesh publish -f /dev/zero` grew the process without bound (a campaign, h50): a line
    over MAX_LINE_BYTES is one bad line, said before its rest is read past, and the lines
    after it are read as usual."""
    from contextlib import ExitStack

    from mesh_stream.cli import publish as publish_cli

    monkeypatch.setattr(publish_cli, "MAX_LINE_BYTES", 10)
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 50 + b'\n{"b": 2}\n' + b"y" * 25)
    with ExitStack() as stack, path.open("rb") as given:
        lines = list(publish_cli._RecordsFile(given, stack).lines())
    assert lines == [(1, b'{"a": 1}\n'), (2, None), (3, b'{"b": 2}\n'), (4, None)]

    class Publisher:
        def __init__(self) -> None:
            self.encoder = type("Encoder", (), {"parsed": {}})()

    checked = publish_cli._checked([(2, None)], "f.jsonl", Publisher(), prepare=False)  # type: ignore[arg-type]
    assert list(checked) == [
        (
            2,
            "f.jsonl:2: a line of more than 10 bytes, more than any record's JSON (a record is "
            "at most the producer's message.max.bytes); is f.jsonl a JSON Lines file?",
        )
    ]
