"""docker-compose.yml and the Dockerfile stay in step with the code: every MESH_* variable
is a setting the code reads, every command names a real CLI command or runnable module, and
Kafka is the version the local launcher runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from mesh_stream.cli.main import cli
from mesh_stream.settings import DEFAULT_KAFKA_VERSION, MeshSettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def interpolate(value: str) -> str:
    """What docker compose puts in place of ``${NAME:-default}`` when NAME is unset."""
    return INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    assert isinstance(command, list), "commands are lists (exec form), not shell strings"
    return [interpolate(str(part)) for part in command]


def setting_names() -> set[str]:
    prefix = str(MeshSettings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in MeshSettings.model_fields}


def test_compose_parses_and_uses_the_pinned_kafka_image() -> None:
    kafka = services()["kafka"]
    assert kafka["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # One listener for other containers, one for the host, one for the controller.
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"INTERNAL": "kafka:19092", "EXTERNAL": "localhost:9092"}
    assert "9092:9092" in kafka["ports"]


def test_every_mesh_variable_in_compose_is_a_setting_the_code_reads() -> None:
    known = setting_names()
    used: dict[str, set[str]] = {}
    for name, service in services().items():
        for variable in service.get("environment", {}):
            if variable.startswith("MESH_"):
                used.setdefault(variable, set()).add(name)
    assert used, "the mesh services must be configured through MESH_* variables"
    unknown = {v: sorted(s) for v, s in used.items() if v not in known}
    assert unknown == {}, f"MESH_* variables no field of MeshSettings reads: {unknown}"


def test_mesh_services_reach_kafka_and_registry_inside_the_compose_network() -> None:
    all_services = services()
    for name, service in all_services.items():
        env = service.get("environment", {})
        if "MESH_BOOTSTRAP_SERVERS" in env:
            host, port = env["MESH_BOOTSTRAP_SERVERS"].split(":")
            assert host in all_services, f"{name}: {host} is not a compose service"
            advertised = all_services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
            assert f"{host}:{port}" in advertised
        if "MESH_REGISTRY_URL" in env:
            assert env["MESH_REGISTRY_URL"] == "http://registry:8081"
    # Every domain principal a service uses exists in the registry's credentials.
    credentials = interpolate(all_services["registry"]["environment"]["MESH_REGISTRY_CREDENTIALS"])
    tokens = dict(pair.split(":", 1) for pair in credentials.split(","))
    for name, service in all_services.items():
        env = service.get("environment", {})
        if "MESH_REGISTRY_PRINCIPAL" in env:
            principal = env["MESH_REGISTRY_PRINCIPAL"]
            assert tokens.get(principal) == env["MESH_REGISTRY_TOKEN"], name


def resolve_cli(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The `mesh` (sub)command ``args`` name, the remaining arguments, and the path."""
    command: click.Command = cli
    path = ["mesh"]
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`{' '.join(path)} {rest[0]}` is not a command"
        path.append(rest.pop(0))
        command = sub
    return command, rest, path


@pytest.mark.parametrize(
    "name", sorted(n for n, s in compose()["services"].items() if s.get("command"))
)
def test_every_compose_command_exists_and_its_options_parse(name: str) -> None:
    argv = command_of(services()[name])
    if argv[0] == "mesh":
        command, rest, path = resolve_cli(argv[1:])
        assert not isinstance(command, click.Group), f"{name}: `{' '.join(path)}` needs a command"
        # Parsing (not running) the arguments refuses unknown options and bad values.
        command.make_context(" ".join(path), rest)
    else:
        assert argv[:2] == ["python", "-m"], f"{name}: run `mesh ...` or `python -m <module>`"
        module = argv[2]
        assert module.startswith("domains."), f"{name}: {module} is not a domain runnable"
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"


def test_simulator_and_processor_services_run_from_the_repository_image() -> None:
    for name, service in services().items():
        if name.endswith(("-simulator", "-processor")):
            assert service["image"] == services()["registry"]["image"]
            assert service["depends_on"] == {
                "setup": {"condition": "service_completed_successfully"}
            }


def test_dockerfile_builds_the_project_on_python_311_slim() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    # The wheel with every extra, at the lock's versions; /app is the sample mesh project.
    install = "RUN pip install -c requirements/dev.lock '.[all]'"
    assert any(line.startswith(install) for line in lines)
    assert "ENV MESH_PROJECT_ROOT=/app" in lines
    assert "COPY . ." in lines
    env = " ".join(line for line in lines if line.startswith("ENV") or line.endswith("\\"))
    for variable in re.findall(r"\b(MESH_\w+)=", env):
        assert variable in setting_names()
    assert services()["registry"]["build"] == "."
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored


def test_compose_runs_exactly_the_runnables_mesh_up_supervises() -> None:
    """The same simulators and processors in both worlds: `mesh up` and docker compose."""
    from domains.runnables import runnables

    def module(argv: list[str]) -> str:
        return argv[argv.index("-m") + 1]

    listed = runnables(5.0)
    compose_modules = {
        module(command_of(service)): name
        for name, service in services().items()
        if "-m" in command_of(service)
    }
    assert sorted(compose_modules) == sorted(module(list(r.argv)) for r in listed)
    known = setting_names()
    for runnable in listed:
        service = services()[compose_modules[module(list(runnable.argv))]]
        # Same kind of child, and the arguments after the module are the same kind of command
        # (processors: faust's `worker`).
        assert compose_modules[module(list(runnable.argv))].endswith(f"-{runnable.kind}")
        argv = command_of(service)
        if runnable.kind == "processor":
            assert argv[3] == "worker"
        assert all(v in known for v in runnable.env if v.startswith("MESH_"))
