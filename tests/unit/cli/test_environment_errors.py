"""Bad settings (MESH_* variables, credentials files) are named with where and what is wrong."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream import settings as settings_module
from mesh_stream.cli.main import cli, run
from mesh_stream.errors import ConfigurationError
from mesh_stream.settings import MeshSettings, misspelled_settings, unsaid_misspelled_settings


def test_each_bad_variable_gets_one_line_naming_it() -> None:
    result = CliRunner().invoke(
        cli,
        ["broker", "status"],
        env={"MESH_BROKER_PORT": "abc", "MESH_BROKER_START_TIMEOUT": "-1"},
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-3:] == [
        "error: invalid MESH_* environment setting:",
        "  MESH_BROKER_PORT='abc': Input should be a valid integer, unable to parse string as "
        "an integer",
        # h50: it said "greater than 0" where --timeout and 0.5 say "at least 1"
        "  MESH_BROKER_START_TIMEOUT='-1': is less than 1 second, which no broker start fits "
        "in; give at least 1 (as `mesh broker start --timeout`), or unset it for the default 90",
    ]
    assert "errors.pydantic.dev" not in result.stderr
    assert "Usage:" not in result.stderr  # the command line was fine: no usage lines (h36)


def test_a_broken_credentials_file_is_named_with_its_line(tmp_path: Path) -> None:
    creds = tmp_path / "creds.yaml"
    creds.write_text("admin: admin-secret\norders: [unclosed\n")
    result = CliRunner().invoke(
        cli, ["registry", "serve", "--port", "0", "--credentials", str(creds)]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{creds}:3: registry credentials are not valid YAML: expected ',' or ']', but got "
        "'<stream end>'; the file maps each principal to its token, e.g. `admin: s3cret`"
    )


def test_a_broken_json_credentials_file_is_named_with_line_and_column(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text('{"admin": "admin-secret",\n "orders": }\n')
    result = CliRunner().invoke(
        cli, ["registry", "serve", "--port", "0", "--credentials", str(creds)]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{creds}:2: registry credentials are not valid JSON (column 12): Expecting value"
    )


def test_a_huge_bad_value_is_shortened_and_a_bad_password_never_shown() -> None:
    result = CliRunner().invoke(
        cli,
        ["broker", "status"],
        env={"MESH_BROKER_PORT": "9" * 100_000, "MESH_KAFKA_SASL_MECHANISM": "GSSAPI"},
    )
    assert result.exit_code == 2
    port_line = next(line for line in result.stderr.splitlines() if "MESH_BROKER_PORT" in line)
    assert "... (100002 characters)" in port_line
    assert len(port_line) < 300


def test_a_credentials_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from mesh_stream.registry.service.auth import Credentials

    creds = tmp_path / "creds.yaml"
    creds.write_bytes(b"orders: \xff\xfe\n")
    with pytest.raises(ConfigurationError) as caught:
        Credentials.load(creds)
    assert str(caught.value) == (
        f"{creds}: registry credentials are not UTF-8 text (byte 0xff at offset 8); fix "
        "MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
    )


def test_serve_without_kafka_is_one_line_not_librdkafka_chatter(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before, `registry serve` printed hundreds of librdkafka connection errors for ~30 s."""
    import socket

    from mesh_stream.broker import reachability
    from mesh_stream.cli.main import run

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 1.0)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed}")
    assert run(["registry", "serve", "--port", "0", "--open-writes"]) == 1
    err = capfd.readouterr().err
    # Clients other tests left in this process may log too: only lines about this port count.
    ours = [line for line in err.splitlines() if f"127.0.0.1:{closed}" in line]
    assert ours == [
        f"error: no Kafka broker answered at 127.0.0.1:{closed} within 1 s (Failed to get "
        "metadata: Local: Broker transport failure); start one with `mesh broker start` and "
        "export the MESH_BOOTSTRAP_SERVERS it prints, or fix MESH_BOOTSTRAP_SERVERS / "
        "--bootstrap-servers"
    ]  # no raw librdkafka log line about it


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["registry", "serve", "--port", "0", "--advertised-url", "nope?t=s3cr3t"],
            {},
            "Invalid value for --advertised-url: 'nope?t=<hidden>' must start with http",
        ),
        (
            ["registry", "serve", "--port", "0"],
            {"MESH_REGISTRY_ADVERTISED_URL": "ftp://x"},
            "MESH_REGISTRY_ADVERTISED_URL='ftp://x': must start with http",
        ),
        (
            ["broker", "status"],
            {"MESH_ALERT_WEBHOOK_URL": "hooks.example.com/T0/s3cr3t"},
            "MESH_ALERT_WEBHOOK_URL=<hidden>: must be an http:// or https:// URL",
        ),
    ],
    ids=["advertised-flag", "advertised-env", "webhook"],
)
def test_urls_other_services_use_are_checked_up_front(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "s3cr3t" not in result.stderr


@pytest.mark.parametrize("command", [["lint", "--help"], ["products", "plan", "-h"]])
def test_a_subcommand_s_help_needs_no_valid_settings(command: list[str]) -> None:
    result = CliRunner().invoke(cli, command, env={"MESH_BOOTSTRAP_SERVERS": "http://kafka:9092"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {' '.join(command[:-1])} [OPTIONS]")


def test_an_option_value_that_reads_like_help_still_meets_the_settings_problem() -> None:
    result = CliRunner().invoke(
        cli,
        ["tail", "orders.order-placed", "--group", "-h"],
        env={"MESH_BOOTSTRAP_SERVERS": "http://kafka:9092"},
    )
    assert result.exit_code == 2
    assert "error: invalid MESH_* environment setting:" in result.stderr
    assert "MESH_BOOTSTRAP_SERVERS='http://kafka:9092'" in result.stderr


def test_a_relative_or_home_data_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka and the workers run in folders of their own: a relative MESH_DATA_DIR must name
    the folder it named where the command was given; `~` is the home folder, not a folder
    named `~`."""
    from mesh_stream.settings import MeshSettings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert MeshSettings(data_dir="b").data_dir == tmp_path / "b"
    assert MeshSettings(data_dir="~/mesh").data_dir == tmp_path / "home" / "mesh"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "MESH_KAFKA_SECURITY_PROTOCOL",
            "TLS",
            "is not a security protocol; use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            "MESH_KAFKA_SASL_MECHANISM",
            "GSSAPI",
            "is not a supported SASL mechanism; use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
    ],
)
def test_a_kafka_security_setting_is_a_bad_environment_setting_like_the_others(
    variable: str, value: str, expected: str
) -> None:
    """A security protocol or SASL mechanism that is none is refused with the other bad
    MESH_* values (usage, exit 2) before any command starts, not at its first Kafka client
    (it was exit 1 there, and only for commands that reach Kafka)."""
    result = CliRunner().invoke(cli, ["products", "list"], env={variable: value})
    assert result.exit_code == 2, result.output
    assert f"{variable}='{value}': {expected}" in result.stderr


def test_security_settings_are_read_in_any_case_and_spelling() -> None:
    settings = MeshSettings(
        kafka_security_protocol="sasl-ssl", kafka_sasl_mechanism="scram_sha_512"
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert MeshSettings(kafka_security_protocol=" ").kafka_security_protocol == "PLAINTEXT"


def test_a_misspelled_variable_is_warned_of_and_a_teams_own_is_not(tmp_path: Path) -> None:
    """A typo left the default in force without a word (h38): now one warning names it and
    the setting it is close to; a variable far from every setting stays unmentioned."""
    result = CliRunner().invoke(
        cli,
        ["broker", "status"],
        env={
            "MESH_DATA_DIR": str(tmp_path),
            "MESH_BOOTSTRAP_SERVER": "kafka:9092",
            "mesh_kafka_sasl_passwd": "x",  # settings read names in any case
            "MESH_ADMIN_TOKEN": "a team's own variable",
        },
    )
    assert result.stderr.splitlines()[:2] == [
        "warning: MESH_BOOTSTRAP_SERVER is not a mesh-stream setting and is ignored; did you "
        "mean MESH_BOOTSTRAP_SERVERS?",
        "warning: mesh_kafka_sasl_passwd is not a mesh-stream setting and is ignored; did you "
        "mean MESH_KAFKA_SASL_PASSWORD?",
    ]
    assert "MESH_ADMIN_TOKEN" not in result.stderr


def test_an_sdk_user_building_settings_is_warned_of_a_misspelled_variable_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The CLI and a worker warned, the SDK did not (h53): MeshSettings logs each one once a
    process, and not what an entry point has printed already."""
    monkeypatch.setattr(settings_module, "_MISSPELLINGS_SAID", set())
    monkeypatch.setenv("MESH_REGISTRY_URLS", "http://registry:8081")
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVER", "kafka:9092")
    assert unsaid_misspelled_settings(again=True) == [
        "MESH_BOOTSTRAP_SERVER is not a mesh-stream setting and is ignored; did you mean "
        "MESH_BOOTSTRAP_SERVERS?",
        "MESH_REGISTRY_URLS is not a mesh-stream setting and is ignored; did you mean "
        "MESH_REGISTRY_URL?",
    ]
    monkeypatch.setattr(settings_module, "_MISSPELLINGS_SAID", set())
    with caplog.at_level(logging.WARNING, logger="mesh_stream.settings"):
        settings = MeshSettings()
        MeshSettings()
    assert settings.registry_url == "http://127.0.0.1:8081"  # the default, as warned
    assert [record.getMessage() for record in caplog.records] == [
        "MESH_BOOTSTRAP_SERVER is not a mesh-stream setting and is ignored; did you mean "
        "MESH_BOOTSTRAP_SERVERS?",
        "MESH_REGISTRY_URLS is not a mesh-stream setting and is ignored; did you mean "
        "MESH_REGISTRY_URL?",
    ]
    caplog.clear()
    monkeypatch.setattr(settings_module, "_MISSPELLINGS_SAID", set())
    unsaid_misspelled_settings(again=True)  # printed by an entry point first
    with caplog.at_level(logging.WARNING, logger="mesh_stream.settings"):
        MeshSettings()
    assert caplog.records == []


def test_a_near_name_beside_the_setting_it_resembles_is_not_warned_of() -> None:
    environ = {"MESH_DATA_DIR": "/d", "MESH_DATADIR": "/e", "MESH_REGISTRY": "x"}
    assert misspelled_settings(environ) == [
        "MESH_REGISTRY is not a mesh-stream setting and is ignored; did you mean MESH_REGISTRY_URL?"
    ]


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        (
            {"MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "MESH_KAFKA_SASL_PASSWORD": "pw"},
            "MESH_KAFKA_SASL_USERNAME",
        ),
        (
            {"MESH_KAFKA_SECURITY_PROTOCOL": "SSL", "MESH_KAFKA_SSL_CA_LOCATION": "/nowhere.pem"},
            "MESH_KAFKA_SSL_CA_LOCATION: /nowhere.pem does not exist",
        ),
    ],
)
def test_settings_that_do_not_fit_together_are_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    says: str,
) -> None:
    """Each variable valid alone, the whole unusable: exit 2 as for one bad variable (h42:
    exit 1, so a script could not tell "fix your configuration" from a failure)."""
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert run(["tail", "orders.order-placed", "--timeout", "1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ")
    assert says in line


def test_a_bad_registry_credentials_variable_is_a_settings_error_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """h51: it exited 1 where every other bad MESH_* value exits 2."""
    from mesh_stream.cli.main import run

    monkeypatch.setenv("MESH_REGISTRY_CREDENTIALS", "admin:tok,orders")
    assert run(["registry", "serve", "--port", "0"]) == 2


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"MESH_REGISTRY_PRINCIPAL": "inventory", "MESH_REGISTRY_TOKEN": "abc def"},
            "error: MESH_REGISTRY_TOKEN (or --token) holds whitespace or control characters",
        ),
        (
            {"MESH_REGISTRY_PRINCIPAL": "inventory"},
            "error: registry principal 'inventory' is set but no token",
        ),
    ],
    ids=["token-with-a-space", "principal-without-token"],
)
def test_a_registry_credential_that_cannot_work_is_a_bad_setting_too(
    env: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """h58: a token with a space inside was exit 1, where the other bad settings are usage
    errors (exit 2), as documented; the value is never shown."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(["products", "list"]) == 2
    shown = capsys.readouterr()
    assert said in shown.err
    assert "abc def" not in shown.err + shown.out
