"""MeshSettings: defaults that work on a fresh machine, MESH_* variables, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_stream.errors import SettingsError
from mesh_stream.settings import MeshSettings, bootstrap_servers_problem, jvm_options


def test_defaults_point_at_the_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MESH_BOOTSTRAP_SERVERS", "MESH_REGISTRY_URL", "MESH_BROKER_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = MeshSettings()
    assert settings.resolved_bootstrap_servers() == "127.0.0.1:9092"
    assert settings.registry_url == "http://127.0.0.1:8081"
    assert settings.cache_dir == Path.home() / ".cache" / "mesh-stream"


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("MESH_BROKER_PORT", "19092")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", "s3cret")
    settings = MeshSettings()
    assert settings.resolved_bootstrap_servers() == "kafka-1:9092,kafka-2:9092"
    assert settings.broker_port == 19092
    assert settings.registry_token is not None
    assert settings.registry_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_BROKER_PORT", "ninety")
    with pytest.raises(SettingsError) as caught:
        MeshSettings()
    assert "MESH_BROKER_PORT" in str(caught.value)


def test_broker_jvm_options_are_options_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_BROKER_JVM_OPTIONS", "-XX:TieredStopAtLevel=1 '-Dnote=a b'")
    assert jvm_options(MeshSettings().broker_jvm_options) == (
        "-XX:TieredStopAtLevel=1",
        "-Dnote=a b",
    )
    for bad, says in (
        ("-cp /tmp/evil", "'-cp' is not a JVM option this setting takes"),
        ("-Xss1m Main", "'Main' is not a JVM option this setting takes"),
        ("'-Dunclosed", "cannot be split as a shell would"),
    ):
        monkeypatch.setenv("MESH_BROKER_JVM_OPTIONS", bad)
        with pytest.raises(SettingsError) as caught:
            MeshSettings()
        assert "MESH_BROKER_JVM_OPTIONS" in str(caught.value)
        assert says in str(caught.value)


def test_processor_instance_id_is_a_kafka_group_instance_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MESH_PROCESSOR_INSTANCE_ID", "analytics.revenue-by-region_2")
    assert MeshSettings().processor_instance_id == "analytics.revenue-by-region_2"
    monkeypatch.setenv("MESH_PROCESSOR_INSTANCE_ID", " ")
    assert MeshSettings().processor_instance_id is None  # empty means unset
    for bad in ("worker 1", "w/1", "x" * 201):
        monkeypatch.setenv("MESH_PROCESSOR_INSTANCE_ID", bad)
        with pytest.raises(SettingsError) as caught:
            MeshSettings()
        assert "MESH_PROCESSOR_INSTANCE_ID" in str(caught.value)
        assert "is not a Kafka group instance id" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://admin:p@ss@host:1/x", "http://<hidden>@host:1/x"),
        ("https://host/api?token=abc&v=2", "https://host/api?token=<hidden>&v=<hidden>"),
        ("http://u:p@host?s3cret#frag", "http://<hidden>@host?<hidden>"),
        ("host:9092", "host:9092"),
    ],
)
def test_a_shown_url_holds_no_password_or_query_value(url: str, shown: str) -> None:
    from mesh_stream.settings import shown_url

    assert shown_url(url) == shown


@pytest.mark.parametrize("variable", ["MESH_DATA_DIR", "MESH_CACHE_DIR"])
def test_an_empty_state_folder_is_refused_not_taken_as_the_current_one(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Path("") is ".", and `mesh up --fresh` erases folders under the data folder."""
    monkeypatch.setenv(variable, "")
    with pytest.raises(SettingsError) as caught:
        MeshSettings()
    assert "is empty; unset it for the default folder" in str(caught.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_float_setting_is_finite(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MESH_BROKER_START_TIMEOUT", value)
    with pytest.raises(SettingsError) as caught:
        MeshSettings()
    assert "finite number" in str(caught.value)


@pytest.mark.parametrize("value", ["../../x", "4.1.1/..", "", "latest", "4"])
def test_the_kafka_version_is_a_release_number(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MESH_KAFKA_VERSION", value)
    with pytest.raises(SettingsError, match="is not an Apache Kafka release number"):
        MeshSettings()


@pytest.mark.parametrize("value", ["4.1.1", "3.9.0", "4.0.0-rc1"])
def test_kafka_release_numbers_are_taken(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MESH_KAFKA_VERSION", value)
    assert MeshSettings().kafka_version == value


def test_a_state_folder_that_is_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    afile = tmp_path / "state"
    afile.write_text("")
    monkeypatch.setenv("MESH_DATA_DIR", str(afile))
    with pytest.raises(SettingsError, match="is a file; name a folder"):
        MeshSettings()


def test_a_monitor_interval_past_a_week_is_refused_before_the_sleep_overflows() -> None:
    """1e10 s ran one round, then failed in the sleep with OverflowError (exit 70)."""
    assert MeshSettings(monitor_interval_seconds=604_800).monitor_interval_seconds == 604_800
    with pytest.raises(SettingsError) as caught:
        MeshSettings(monitor_interval_seconds=1e10)
    assert "less than or equal to 604800" in str(caught.value)


@pytest.mark.parametrize(
    ("servers", "problem"),
    [
        ("http://127.0.0.1:9092", "has 'http://' in 'http://127.0.0.1:9092': bootstrap servers"),
        ("a:9092,ftp://x", "has 'ftp://' in 'ftp://x': bootstrap servers are Kafka listeners"),
        ("a:9092,b:x", "has port 'x' in 'b:x', not a port number (0-65535)"),
    ],
)
def test_a_bootstrap_url_or_bad_port_is_refused_before_anything_connects(
    servers: str, problem: str
) -> None:
    """`http://host:port` passed and then waited 15 s for "no Kafka broker answers"."""
    found = bootstrap_servers_problem(servers)
    assert found is not None
    assert found.startswith(problem)


@pytest.mark.parametrize(
    "servers", ["127.0.0.1:9092", "PLAINTEXT://k1:9092,SASL_SSL://k2:9093", "[::1]:9092"]
)
def test_listeners_with_or_without_their_protocol_are_bootstrap_servers(servers: str) -> None:
    assert bootstrap_servers_problem(servers) is None


def test_the_registry_writer_id_is_one_per_topic_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registries on different topics must never fence each other with one transactional.id."""
    for name in ("MESH_REGISTRY_TOPIC", "MESH_REGISTRY_WRITER_ID"):
        monkeypatch.delenv(name, raising=False)
    assert MeshSettings().resolved_registry_writer_id == "mesh-registry-writer"
    staging = MeshSettings(registry_topic="_mesh_registry_staging")
    assert staging.resolved_registry_writer_id == "mesh-registry-writer-_mesh_registry_staging"
    given = staging.model_copy(update={"registry_writer_id": "ours"})
    assert given.resolved_registry_writer_id == "ours"
    monkeypatch.setenv("MESH_REGISTRY_WRITER_ID", "from-env")
    assert MeshSettings(registry_topic="t").resolved_registry_writer_id == "from-env"


# -- a settings campaign's findings (hostile values, secrets in messages) -------------------
def refusal(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """What a command prints for ``variable=value`` (refused), which names the variable."""

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        MeshSettings()
    message = str(caught.value)
    assert variable in message
    return message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MESH_BOOTSTRAP_SERVERS", "http://user:s3cret-1@host:9092"),
        ("MESH_BOOTSTRAP_SERVERS", "plaintext://admin:s3cret-1@127.0.0.1:1"),
        ("MESH_REGISTRY_URL", "http://admin:s3cret-1#1@registry:8081"),
        ("MESH_REGISTRY_URL", "user:s3cret-1@host:8081"),
        ("MESH_REGISTRY_URL", "http:/user:s3cret-1@host"),
        ("MESH_BROKER_JVM_OPTIONS", "-Djavax.net.ssl.keyStorePassword=s3cret-1 x"),
        ("MESH_OPENLINEAGE_URL", "admin:s3cret-1"),
        ("MESH_REGISTRY_ADVERTISED_URL", "http://admin:s3cret-1@127.0.0.1:1"),
    ],
)
def test_a_refused_value_never_shows_its_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = refusal(monkeypatch, variable, value)
    assert "s3cret-1" not in message, message


@pytest.mark.parametrize(
    ("servers", "problem"),
    [
        ("host:²", "has port '²' in 'host:²', not a port number"),
        ("host:١٢٣", "has port '١٢٣' in 'host:١٢٣', not a port number"),
        (":9092", "has no host name in ':9092'"),
        (":abc", "has no host name in ':abc'"),
        ("admin:pw@host:9092", "has credentials (user@) in '<hidden>@host:9092'"),
        # h50: these passed --bootstrap-servers' check, then MESH_BOOTSTRAP_SERVERS was blamed
        # for the flag's value ('garbage:::'), or failed after 10 s of connecting ('a:1:2')
        ("garbage:::", "has host 'garbage::' in 'garbage:::': a host name has no ':'"),
        ("a:1:2", "has host 'a:1' in 'a:1:2': a host name has no ':' (an IPv6 address goes"),
        ("a:9092,localhost", "has no port in 'localhost' (host:port)"),
        ("host:", "has port '' in 'host:', not a port number"),
    ],
)
def test_bootstrap_servers_need_a_host_ascii_digits_and_no_credentials(
    servers: str, problem: str
) -> None:
    found = bootstrap_servers_problem(servers)
    assert found is not None
    assert found.startswith(problem), found


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MESH_CONSUMER_REGISTRY_WAIT_SECONDS", "1e308", "less than or equal to 604800"),
        ("MESH_OPENLINEAGE_RUNNING_MINUTES", "1e-9", "greater than or equal to 0.01"),
        ("MESH_OPENLINEAGE_TOPIC", "bad topic!", "contains ' '; Kafka allows only"),
        ("MESH_OPENLINEAGE_URL", "abc", "must be an http:// or https:// URL with a host name"),
        ("MESH_REGISTRY_WRITER_ID", "   ", "is blank or has blanks around it"),
        ("MESH_BROKER_HEAP", "abc", "is not a heap size"),
        ("MESH_BROKER_HEAP", "", "is not a heap size"),
        ("MESH_DATA_DIR", "/dev/null", "is not a folder"),
        ("MESH_CACHE_DIR", "/dev/null/x", "lies under something that is not a folder"),
        ("MESH_REGISTRY_ADVERTISED_URL", "http://a:b@h:1", "carries credentials"),
    ],
)
def test_hostile_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    message = refusal(monkeypatch, variable, value)
    assert says in message, message


def test_sensible_values_of_the_newly_bounded_settings_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in (
        ("MESH_CONSUMER_REGISTRY_WAIT_SECONDS", "604800"),
        ("MESH_OPENLINEAGE_RUNNING_MINUTES", "0.01"),
        ("MESH_OPENLINEAGE_TOPIC", "_mesh_lineage"),
        ("MESH_OPENLINEAGE_URL", "http://marquez:5000"),
        ("MESH_BROKER_HEAP", "2g"),
        ("MESH_REGISTRY_ADVERTISED_URL", "http://registry-1.internal:8081"),
    ):
        monkeypatch.setenv(variable, value)
    settings = MeshSettings()
    assert settings.broker_heap == "2g"
    assert settings.openlineage_running_minutes == 0.01


@pytest.mark.parametrize(
    "variable",
    [
        "MESH_GOVERNANCE_ROOT",
        "MESH_KAFKA_SSL_CA_LOCATION",
        "MESH_KAFKA_SSL_CERTIFICATE_LOCATION",
        "MESH_KAFKA_SSL_KEY_LOCATION",
        "MESH_REGISTRY_CREDENTIALS_FILE",
        "MESH_PROCESSOR_METRICS_PORT",
    ],
)
def test_an_empty_optional_path_or_port_is_unset_not_the_current_folder(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`MESH_KAFKA_SSL_CA_LOCATION=` became Path("."), which librdkafka then failed to read
    as a CA file; an empty metrics port was a validation error."""
    monkeypatch.setenv(variable, "  ")
    field = variable.removeprefix("MESH_").lower()
    assert getattr(MeshSettings(), field) is None


def test_a_short_portal_session_secret_is_refused_without_repeating_it() -> None:
    """`MESH_REGISTRY_SESSION_SECRET=a` was accepted: whoever guesses the key seals a sign-in
    cookie for any principal."""

    with pytest.raises(SettingsError) as caught:
        MeshSettings(registry_session_secret="hunter2-hunter2")
    shown = str(caught.value)
    assert "registry_session_secret=<hidden>: is shorter than 16" in shown
    assert "hunter2" not in shown
    assert "hunter2" not in str(caught.value)  # printed as it is, outside the CLI
    secret = MeshSettings(registry_session_secret="x" * 16).registry_session_secret
    assert secret is not None
    assert secret.get_secret_value() == "x" * 16


def test_repr_and_str_of_the_settings_hide_a_token_in_the_registry_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The docs give a token as ``http://principal:token@host``; a settings object that an
    application logs or prints must not show it (a design-rules audit found it in both)."""
    monkeypatch.setenv("MESH_REGISTRY_URL", "http://orders:s3cret-1@registry:8081")
    settings = MeshSettings()
    assert settings.registry_url == "http://orders:s3cret-1@registry:8081"  # still usable
    for shown in (repr(settings), str(settings)):
        assert "s3cret-1" not in shown
        assert "registry_url='http://<hidden>@registry:8081'" in shown
    # and a dump (a settings page, a debug endpoint), as SecretStr fields dump as stars (h53)
    assert settings.model_dump()["registry_url"] == "http://<hidden>@registry:8081"
    assert "s3cret-1" not in settings.model_dump_json()


def test_a_keyword_that_is_no_setting_is_refused_with_the_nearest_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """h53: ``MeshSettings(bootstrap_server="x:1")`` was ignored, the default left in force;
    and a bad keyword was named as the MESH_* variable it was not read from."""
    monkeypatch.setenv("MESH_BROKER_PORT", "9093")
    with pytest.raises(SettingsError) as refused:
        MeshSettings(bootstrap_server="kafka:9092", colour="blue")
    assert str(refused.value) == (
        "not a mesh-stream setting: 'bootstrap_server' (did you mean 'bootstrap_servers'?), "
        "'colour'"
    )
    with pytest.raises(SettingsError) as refused:
        MeshSettings(broker_port="abc")
    assert str(refused.value).splitlines()[:2] == [
        "invalid setting:",
        "  broker_port='abc': Input should be a valid integer, unable to parse string as an "
        "integer",
    ]
    monkeypatch.setenv("MESH_BROKER_PORT", "abc")
    with pytest.raises(SettingsError, match=r"^invalid MESH_\* environment setting:\n  MESH_"):
        MeshSettings(bootstrap_servers="kafka:9092")
    assert MeshSettings(broker_port=9094, _env_file=None).broker_port == 9094


def test_the_public_url_the_portal_shows_readers_carries_no_credentials() -> None:
    assert MeshSettings(registry_public_url="https://registry.example.com").registry_public_url
    with pytest.raises(SettingsError) as refused:
        MeshSettings(registry_public_url="https://reader:secret@registry.example.com")
    assert "which every reader of the portal would see" in str(refused.value)
    assert "secret" not in str(refused.value)
