"""Findings of the hostile-input campaign on the `mesh` CLI (briefs/hostile_cli.md), each
pinned: exit statuses and messages that name the option, the port, the folder."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_stream.broker import reachability
from mesh_stream.cli.main import open_standard_streams, run
from mesh_stream.cli.monitor import _serve_metrics
from mesh_stream.errors import BrokerUnreachableError, ConfigurationError, KafkaAuthenticationError
from mesh_stream.exports.datahub import post_proposals
from mesh_stream.kafka.clients import _handshake_error, _listener_reply
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.logformat import configure_logging
from mesh_stream.monitor import MonitorMetrics
from mesh_stream.scaffold import scaffold

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))


def mesh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = run(args)
    out, err = capsys.readouterr()
    return status, out + err


# -- 7: a port range above 65535 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "brokers", "last"), [("65535", "2", 65536), ("65530", "9", 65538)]
)
def test_broker_start_refuses_ports_past_65535_up_front(
    capsys: pytest.CaptureFixture[str], port: str, brokers: str, last: int
) -> None:
    status, said = mesh(["broker", "start", "--port", port, "--brokers", brokers], capsys)
    assert status == 2
    assert f"--port {port} with --brokers {brokers} needs ports up to {last}" in said
    assert f"pick a port of at most {65536 - int(brokers)}" in said
    assert "OverflowError" not in said


def test_up_refuses_a_broker_port_whose_nodes_do_not_fit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESH_BROKER_PORT", "65535")
    status, said = mesh(["up", "--brokers", "3", "--project", str(REPO)], capsys)
    assert status == 2
    assert "MESH_BROKER_PORT 65535 with --brokers 3 needs ports up to 65537" in said


# -- 9: empty values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["acl", "apply", "--dry-run", "--root", str(REPO)],
        ["products", "plan", str(REPO)],
        ["monitor", "--once"],
        ["registry", "serve"],
        ["verify", "x"],
    ],
    ids=["acl apply", "products plan", "monitor", "registry serve", "verify"],
)
def test_an_empty_bootstrap_servers_is_refused_not_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status, said = mesh([*args, "--bootstrap-servers", ""], capsys)
    assert status == 2
    assert "'--bootstrap-servers': is empty" in said
    assert "MESH_BOOTSTRAP_SERVERS" in said


@pytest.mark.parametrize("command", [["broker", "status"], ["broker", "start"], ["up"]])
def test_an_empty_data_dir_is_refused_not_the_current_folder(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    status, said = mesh([*command, "--data-dir", ""], capsys)
    assert status == 2
    assert "'--data-dir': is empty" in said


# -- 10: exit statuses and noise -----------------------------------------------------------


def test_verify_reports_a_module_that_exits_on_import(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "exits_on_import_3.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "exits_on_import_3", raising=False)
    status, said = mesh(["verify", "exits_on_import_3", "--project", str(REPO)], capsys)
    assert status == 2
    assert "exits_on_import_3: importing it exited with status 3" in said


def test_cli_logging_keeps_library_info_lines_out_unless_debugging() -> None:
    stream = io.StringIO()
    undo = configure_logging("INFO", "text", stream)
    try:
        logging.getLogger("httpx").info('HTTP Request: GET http://x/products "200 OK"')
        logging.getLogger("httpx").warning("a real problem")
        logging.getLogger("mesh_stream.monitor").info("our own line")
    finally:
        undo()
    assert "HTTP Request" not in stream.getvalue()
    assert "a real problem" in stream.getvalue()
    assert "our own line" in stream.getvalue()
    assert logging.getLogger("httpx").level == logging.NOTSET  # undone
    stream = io.StringIO()
    undo = configure_logging("DEBUG", "text", stream)
    try:
        logging.getLogger("httpx").info("HTTP Request: shown when debugging")
    finally:
        undo()
    assert "shown when debugging" in stream.getvalue()


# -- 8: messages that name the cause --------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_monitor_metrics_port_in_use_names_the_port_and_the_option(taken_port: int) -> None:
    metrics = MonitorMetrics()
    with pytest.raises(ConfigurationError) as caught:
        _serve_metrics(metrics, "127.0.0.1", taken_port)
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{taken_port} for /metrics: ")
    assert "--metrics-port" in message
    assert "OSError" not in message


@pytest.mark.parametrize("url", ["http://", "https://:8080", "ftp://gms", "http://x:abc"])
def test_a_gms_url_without_a_host_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    status, said = mesh(["export", "datahub", "orders.order-placed", "--gms-url", url], capsys)
    assert status == 2
    assert "Invalid value for '--gms-url'" in said
    assert "missing an 'http://'" not in said
    with pytest.raises(ConfigurationError, match="is not"):
        post_proposals([], url)


def test_init_on_a_path_that_cannot_be_looked_at_gets_the_unwritable_folder_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    too_long = tmp_path / ("a" * 300)
    with pytest.raises(ConfigurationError) as caught:
        scaffold("inv", too_long)
    assert "cannot write the new project into" in str(caught.value)
    assert "pick a folder that can be created and written" in str(caught.value)

    def denied(self: Path, **_kwargs: bool) -> os.stat_result:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", denied)  # /root/x as another user (root ignores modes)
    with pytest.raises(ConfigurationError) as caught:
        scaffold("inv", tmp_path / "x")
    assert str(caught.value).startswith(
        f"cannot write the new project into {tmp_path / 'x'}: {tmp_path / 'x'}: permission denied"
    )


def test_init_errors_never_show_python_class_names(capsys: pytest.CaptureFixture[str]) -> None:
    status, said = mesh(["init", "inv", "/tmp/" + "a" * 300], capsys)
    assert status == 1
    assert "(OSError)" not in said
    assert "cannot write the new project into" in said


def serve(handler: str) -> tuple[socket.socket, int]:
    """A TCP listener that never answers (``silent``), closes after reading (``closes``) or
    answers in HTTP (``http``)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            if handler == "closes":
                peer.recv(100)
                peer.close()
            elif handler == "http":  # a web server's answer to bytes it cannot read
                peer.recv(100)
                peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                peer.close()
            else:
                held.append(peer)

    threading.Thread(target=accept, daemon=True).start()
    return server, int(server.getsockname()[1])


def test_a_listener_that_never_answers_is_not_said_to_close_connections() -> None:
    silent, silent_port = serve("silent")
    closes, closes_port = serve("closes")
    try:
        quiet = KafkaConnection.create(f"127.0.0.1:{silent_port}")
        assert _listener_reply(quiet, wait=0.5) == "silent"
        error = _handshake_error(quiet, "silent", 12.2)
        assert isinstance(error, BrokerUnreachableError)
        assert str(error).startswith(
            f"127.0.0.1:{silent_port} accepts TCP connections but gave no Kafka answer within "
            f"12 s (over PLAINTEXT)"
        )
        assert "closes" not in str(error)
        closing = KafkaConnection.create(f"127.0.0.1:{closes_port}")
        assert _listener_reply(closing, wait=2) == "closed"
        error = _handshake_error(closing, "closed", 2)
        assert isinstance(error, KafkaAuthenticationError)
        assert "accepts connections but closes them" in str(error)
    finally:
        silent.close()
        closes.close()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = int(unused.getsockname()[1])
    assert _listener_reply(KafkaConnection.create(f"127.0.0.1:{nobody}")) is None


def test_an_http_server_given_as_kafka_is_said_to_be_one_not_to_want_credentials() -> None:
    """h53: the registry's port as MESH_BOOTSTRAP_SERVERS was a KafkaAuthenticationError
    saying the listener needs credentials or TLS."""
    web, port = serve("http")
    try:
        conn = KafkaConnection.create(f"127.0.0.1:{port}")
        assert _listener_reply(conn, wait=2) == "http"
        error = _handshake_error(conn, "http", 2)
        assert isinstance(error, BrokerUnreachableError)
        assert str(error) == (
            f"127.0.0.1:{port} is an HTTP server, not a Kafka listener (it answered a Kafka "
            f"request with HTTP: the registry's port, say); check MESH_BOOTSTRAP_SERVERS (or "
            f"--bootstrap-servers)"
        )
    finally:
        web.close()


# -- products plan: local mistakes before remote ones ----------------------------------------


def test_products_plan_names_a_broken_descriptor_before_asking_kafka(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A descriptor that does not load is the user's to fix whatever Kafka says: with no
    broker to reach, it is reported (file:line) rather than the broker (with one, the plan
    lists it among its refusals)."""
    project = tmp_path / "shop"
    scaffold("shop", project)
    broken = project / "domains" / "shop" / "products" / "broken.yaml"
    broken.write_text("name: shop.broken\n  owner: [\n")
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MESH_REGISTRY_URL", "http://127.0.0.1:2")
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 1.0)  # 10 s say the same
    status, said = mesh(["products", "plan", str(project)], capsys)
    assert status == 1
    assert f"{broken}:2: not valid YAML" in said
    assert "no Kafka broker answers" not in said


def test_a_closed_stdin_or_stderr_reads_and_writes_nothing_and_a_closed_stdout_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python leaves a closed standard stream None: `-f -` then crashed inside click
    (RuntimeError, exit 70) and any output with AttributeError."""
    monkeypatch.setattr(sys, "stdin", None)
    monkeypatch.setattr(sys, "stderr", None)
    assert open_standard_streams() is None
    assert sys.stdin.read() == ""
    assert sys.stdin.buffer.read() == b""  # what click's `-` file reads
    sys.stderr.write("lost, as with 2>&-")
    monkeypatch.setattr(sys, "stdout", None)
    refused = open_standard_streams()
    assert refused is not None
    assert refused.startswith("standard output is closed, so what the command prints")


def test_a_schema_file_that_is_json_but_no_avro_schema_is_named_with_the_field(
    tmp_path: Path,
) -> None:
    """`publish --schema` said only "invalid Avro schema: Undefined type: recrd"."""
    from mesh_stream.cli.publish import _read_schema

    schema = tmp_path / "bad.avsc"
    schema.write_text('{"type": "record", "name": "x", "fields": [{"name": "a", "type": "strng"}]}')
    with pytest.raises(ConfigurationError) as refused:
        _read_schema(schema)
    assert str(refused.value).startswith(
        f'{schema}: --schema at fields.0.type: invalid Avro schema: x.a: unknown type "strng"'
    )


def test_an_empty_group_to_register_is_a_usage_error_not_a_listing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`products consumers X --register ""` listed the consumers and exited 0."""
    assert run(["products", "consumers", "orders.order-placed", "--register", ""]) == 2
    assert "Invalid value for '--register': '' is empty" in capsys.readouterr().err


def _raise_inside_c(cause: BaseException) -> None:
    """What Python raises when a C call (librdkafka's consume) returns while ``cause`` is
    pending: a SystemError caused by it."""
    try:
        raise cause
    except BaseException as pending:
        raise SystemError(
            "<built-in method consume> returned a result with an exception set"
        ) from pending


def test_ctrl_c_inside_a_c_call_is_an_interrupt_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mesh tail` interrupted at the wrong moment said 'unexpected SystemError ... a bug'."""
    from mesh_stream.cli import main as cli_main

    monkeypatch.setattr(
        cli_main.cli, "main", lambda **_kwargs: _raise_inside_c(KeyboardInterrupt())
    )
    assert run(["tail", "orders.order-placed"]) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli_main.cli, "main", lambda **_kwargs: _raise_inside_c(ValueError("x")))
    assert run(["tail", "orders.order-placed"]) == 70  # any other SystemError stays a bug
    assert "error: unexpected SystemError: <built-in method consume>" in capsys.readouterr().err


def test_ctrl_c_while_waiting_for_an_unreachable_broker_stops_at_once(tmp_path: Path) -> None:
    """`mesh tail` asking a broker that is not there for its topics held a Ctrl-C until
    librdkafka's 10 s wait ended (and the KafkaException raised then lost it): the wait now
    runs on a thread of its own, and the command stops within a fraction of a second."""
    import signal
    import subprocess
    import time

    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # `mesh tail` with Python's own Ctrl-C handler, whatever the test runner left ignored
    command = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from mesh_stream.cli.main import main; "
        "sys.argv = ['mesh', 'tail', 'orders.order-placed', '--timeout', '5']; main()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", command],
        env={**os.environ, "MESH_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"},
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # past the imports, inside the broker wait
    assert process.poll() is None
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert time.monotonic() - interrupted < 3, err  # before: up to the 10 s wait's end
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted", err  # not click's "Aborted." (h51)


def test_export_refuses_an_empty_output_and_says_when_all_finds_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--output ""` wrote into the current folder; `--all` on an empty registry printed
    nothing and exited 0 (hostile-input campaign 2)."""
    from tests.registry_stubs import answering

    monkeypatch.chdir(tmp_path)
    assert run(["export", "odcs", "orders.order-placed", "--output", ""]) == 2
    assert "'--output': is empty; give a path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with answering({"/products": []}) as url:
        assert run(["export", "asyncapi", "--all", "--registry-url", url]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --all: the registry holds no data product yet, so there is nothing to export "
        "(register some with `mesh products apply`)"
    )


@pytest.mark.parametrize("command", ["asyncapi", "odcs", "openlineage", "datahub"])
def test_export_refuses_what_cannot_be_a_product_name_as_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mesh export asyncapi 'BAD NAME'` asked the registry and said 404 (exit 1)."""
    status, said = mesh(["export", command, "orders.order-placed", "BAD NAME"], capsys)
    assert status == 2
    assert (
        "'BAD NAME' is not a product name `<domain>.<product>` (lowercase, e.g. "
        "orders.order-placed)"
    ) in said


def test_init_force_says_which_files_it_replaced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "shop"
    assert run(["init", "shop", str(target)]) == 0
    assert "  created mesh.yaml" in capsys.readouterr().out
    (target / "extra.txt").write_text("kept")
    assert run(["init", "shop", str(target), "--force"]) == 0
    out = capsys.readouterr().out
    assert "  replaced mesh.yaml" in out
    assert "  created mesh.yaml" not in out
    assert (target / "extra.txt").read_text() == "kept"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["tail", "x", "--from"], "No such option: --from Did you mean --from-beginning?"),
        (["acl", "apply", "--retir"], "(Possible options: --retire, --retire-principal)"),
        (["tail", "x", "--from-beggining"], "Did you mean --from-beginning?"),
        (["broker", "start", "--fresch"], "Did you mean --fresh?"),
    ],
)
def test_a_mistyped_option_is_offered_the_visible_options_it_may_mean_never_a_hidden_one(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    """click offers any option spelled alike, hidden ones too (`--from` was offered `tail`'s
    hidden `--root`) and not the one it begins; the suggestions are the command's visible
    options, those it begins first."""
    assert run(args) == 2
    error = capsys.readouterr().err
    assert said in error, error
    assert "--root" not in error


def test_a_gms_url_with_a_query_is_refused_and_a_malformed_one_is_not_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--gms-url http://gms/x?token=T` posted to `/x?token=T/aspects?...`; a value that is
    no URL was echoed whole, token and all (h42)."""
    status, said = mesh(
        ["export", "datahub", "orders.order-placed", "--gms-url", "http://gms:8080/x?token=T0K"],
        capsys,
    )
    assert status == 2
    assert "has a query or fragment; give the GMS base URL" in said
    assert "T0K" not in said
    status, said = mesh(
        ["export", "datahub", "orders.order-placed", "--gms-url", "gms s3cret-t0ken"], capsys
    )
    assert status == 2
    assert "the value (not shown) is not an http(s) URL with a host" in said
    assert "s3cret-t0ken" not in said


# -- h49: products plan/apply --json when the command cannot plan ---------------------------


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_products_plan_and_apply_with_json_print_an_error_they_hit_as_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """With Kafka unreachable, --json printed the error as text only: a script reading
    stdout could not tell it from a plan apply would refuse."""
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "orders")
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 1.0)  # 10 s say the same
    status = run(
        [
            "products",
            command,
            str(REPO),
            "--json",
            "--bootstrap-servers",
            f"127.0.0.1:{_free_port()}",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 1
    said = json.loads(out)
    assert list(said) == ["error"]
    assert said["error"].startswith("no Kafka broker answer")
    assert "(or --bootstrap-servers)" in said["error"]
    assert f"error: {said['error']}" in err


def _free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


def test_a_number_option_given_text_says_it_is_not_an_integer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """h50: click said "'abc' is not a valid integer range"."""
    status, said = mesh(["broker", "start", "--port", "abc"], capsys)
    assert status == 2
    assert "Invalid value for '--port': 'abc' is not a valid integer." in said


def test_products_status_watch_refuses_json_and_an_endless_interval_before_asking(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """h51: with the registry down, --watch --json said the registry's error (exit 1), not
    the usage error; --interval 1e308 was taken, so the table never redrew."""
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://127.0.0.1:{_free_port()}")
    status, said = mesh(["products", "status", "--watch", "--json"], capsys)
    assert status == 2
    assert "--watch draws a table; drop --json (or --watch)" in said
    status, said = mesh(["products", "status", "--watch", "--interval", "1e308"], capsys)
    assert status == 2
    assert "is not in the range 0.5<=x<=86400" in said


def test_an_export_with_a_project_setting_that_names_no_project_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """h51: `mesh export` went on without the project, silently (exit 0)."""
    monkeypatch.setenv("MESH_PROJECT_ROOT", str(tmp_path / "nonexistent"))
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://127.0.0.1:{_free_port()}")
    status, said = mesh(["export", "odcs", "orders.order-placed"], capsys)
    assert status == 1
    assert f"MESH_PROJECT_ROOT={tmp_path / 'nonexistent'}: no mesh.yaml there" in said


def test_an_export_output_that_is_a_device_is_said_to_be_no_folder() -> None:
    """h51: `--output /dev/full` said "cannot create the folder: File exists"."""
    from mesh_stream.cli.export.common import write_documents

    with pytest.raises(ConfigurationError) as refused:
        write_documents([("a.yaml", {"a": 1})], Path("/dev/full"))
    assert str(refused.value) == (
        "--output /dev/full is a character device, not a folder: name a folder for the "
        "documents, or leave --output out to print them"
    )


def test_an_empty_listen_host_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """h51: `mesh registry serve --host ""` said "cannot listen on :8081: unknown host"."""
    status, said = mesh(["registry", "serve", "--host", ""], capsys)
    assert status == 2
    assert "'--host': '' is not a host name or IP address" in said


def test_a_full_standard_output_is_said_to_be_the_output(tmp_path: Path) -> None:
    """h51: `mesh ... > /dev/full` said only "No space left on device (OSError)"."""
    import subprocess

    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mesh_stream.cli.main", "acl", "plan", "--root", str(REPO)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: cannot write the output: No space left on device (standard output, or a file "
        "being written)"
    )
