"""docs/tutorial.md, executed step by step as a new domain team would follow it.

The wheel of this checkout goes into a fresh virtualenv in a temporary folder; the page's
steps run in one bash session there (that virtualenv first on PATH, no PYTHONPATH, HOME in
the temporary folder) against a broker and a registry of this module's own: the tutorial's
product names and processor group are fixed, and tests/integration/test_domain_workflow.py
uses the same ones on the session broker. Then the results are checked, not only the exit
codes: the processor's output equals a recomputation from the published input, the lineage
shows the edge, the catalog lists both products with their fields. Last, a second repository
(the reporting domain) runs its own scaffolded processor over the tutorial's product, which
it finds in the registry only, and its output equals the same recomputation.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from mesh_stream import ProductConsumer, RegistryClient
from mesh_stream.kafka import KafkaConnection
from mesh_stream.settings import MeshSettings
from tests.integration.own_broker import own_cluster, running
from tests.integration.wheel_env import REPOSITORY, InstalledMesh, build_wheel, install

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

TUTORIAL = REPOSITORY / "docs" / "tutorial.md"
EVENTS = "inventory.example-event"
TOTALS = "inventory.item-totals"
COMMAND_TIMEOUT = 180.0  # the slowest step, the processor's first output, waits up to 120 s


# -- the page's steps --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A `$ ` line (with its `\\` continuations) of a console block; ``line`` is 1-based."""

    line: int
    text: str


@dataclass(frozen=True)
class FileToWrite:
    """A fenced block with title="PATH": written at PATH before the next command."""

    line: int
    path: str
    content: str


Step = Command | FileToWrite

_FENCE_OPEN = re.compile(r'^```(?P<lang>[a-z]*)(?:\s+title="(?P<title>[^"]*)")?\s*$')


class TutorialError(ValueError):
    """The page breaks its own header's contract; the message starts with its line."""


def parse_steps(text: str, name: str = "docs/tutorial.md") -> list[Step]:
    """The steps of a page written to the tutorial's header contract, in order.

    Every fenced block must be a console block (commands), a bash block (the environment
    the reader provides, not run) or a block with title="PATH" (a file); anything else, an
    unterminated block or continuation, and a console block without a command are errors
    naming the line.
    """
    lines = text.splitlines()
    steps: list[Step] = []
    number = 0
    while number < len(lines):
        opening = lines[number]
        number += 1
        if not opening.lstrip().startswith("```"):
            continue
        where = f"{name}:{number}"
        fence = _FENCE_OPEN.match(opening)
        if fence is None:
            raise TutorialError(
                f'{where}: fence {opening!r} is not ```LANG [title="PATH"] from the line\'s start'
            )
        lang, title = fence["lang"], fence["title"]
        body: list[str] = []
        while number < len(lines) and lines[number].rstrip() != "```":
            body.append(lines[number])
            number += 1
        if number == len(lines):
            raise TutorialError(f"{where}: the ```{lang} block is never closed")
        number += 1
        if title is not None:
            if lang in ("console", "bash"):
                raise TutorialError(f"{where}: a ```{lang} block cannot be a file (title=)")
            if not title or title.startswith("/") or ".." in Path(title).parts:
                raise TutorialError(f"{where}: title={title!r} is not a path inside the project")
            steps.append(FileToWrite(number - len(body) - 1, title, "\n".join(body) + "\n"))
        elif lang == "console":
            steps += _commands(body, first_line=number - len(body), name=name)
        elif lang != "bash":
            raise TutorialError(
                f"{where}: a ```{lang} block without title= is neither a step (console), "
                'the environment (bash) nor a file (title="PATH")'
            )
    return steps


def _commands(body: list[str], first_line: int, name: str) -> list[Command]:
    commands: list[Command] = []
    pending: tuple[int, list[str]] | None = None
    for offset, line in enumerate(body):
        number = first_line + offset
        if pending is not None:
            pending[1].append(line)
        elif line.startswith("$ "):
            pending = (number, [line[2:]])
        else:
            continue  # sample output
        if not line.endswith("\\"):
            start, parts = pending
            commands.append(Command(start, "\n".join(parts)))
            pending = None
    if pending is not None:
        raise TutorialError(f"{name}:{pending[0]}: the command's `\\` continues past its block")
    if not commands:
        raise TutorialError(f"{name}:{first_line - 1}: a ```console block without a `$ ` command")
    return commands


def test_the_parser_reads_commands_files_and_continuations() -> None:
    page = (
        "intro\n```bash\nmesh broker start\n```\n"
        "```console\n$ mesh init a b\n$ cd b\nsample output\n$ export X=$(echo \\\n    1)\n```\n"
        '```python title="consume.py"\nprint(1)\n```\n'
        "```console\n$ python consume.py\n```\n"
    )
    assert parse_steps(page) == [
        Command(6, "mesh init a b"),
        Command(7, "cd b"),
        Command(9, "export X=$(echo \\\n    1)"),
        FileToWrite(12, "consume.py", "print(1)\n"),
        Command(16, "python consume.py"),
    ]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("text\n```console\n$ mesh lint\n", "docs/tutorial.md:2: the ```console block is never"),
        ('```yaml title="a.yaml"\nx: 1\n', "docs/tutorial.md:1: the ```yaml block is never"),
        ("```console\n$ echo \\\n```\n", "docs/tutorial.md:2: the command's `\\` continues"),
        ("\n```text\nhi\n```\n", "docs/tutorial.md:2: a ```text block without title="),
        ("```yaml name=x\n```\n", "docs/tutorial.md:1: fence '```yaml name=x' is not"),
        ('```json title="../x"\n{}\n```\n', "docs/tutorial.md:1: title='../x' is not a path"),
        ('```console title="x"\n$ ls\n```\n', "docs/tutorial.md:1: a ```console block cannot"),
        ("```console\nno command\n```\n", "docs/tutorial.md:1: a ```console block without"),
        ("  ```console\n$ ls\n  ```\n", "docs/tutorial.md:1: fence '  ```console' is not"),
    ],
)
def test_the_parser_names_the_line_of_a_broken_page(page: str, message: str) -> None:
    with pytest.raises(TutorialError) as refused:
        parse_steps(page)
    assert str(refused.value).startswith(message)


# -- one bash session ------------------------------------------------------------------------


class StepFailedError(AssertionError):
    """A tutorial command failed or hung; the message names its line and shows its output."""


class Shell:
    """One bash process (its own process group) fed one command at a time.

    Each command is sourced from a file of its own with stdin from /dev/null, so `cd`,
    `export` and background jobs carry over and no command can read the next one. bash runs
    with `set -euo pipefail`: a failing command ends it, and the caller names the step.
    """

    def __init__(self, cwd: Path, scripts: Path, env: dict[str, str]) -> None:
        self.scripts = scripts
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set -euo pipefail\n")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.put(raw.decode(errors="replace"))
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def run(self, command: Command, timeout: float = COMMAND_TIMEOUT) -> str:
        """The command's output (stdout and stderr); StepFailedError naming its line otherwise."""
        script = self.scripts / f"{command.line:04d}.sh"
        script.write_text(command.text + "\n")
        marker = f"__step_done_{uuid.uuid4().hex}__"
        self._send(f"source {shlex.quote(str(script))} </dev/null\nprintf '\\n%s\\n' {marker}\n")
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._failed(
                    command, f"still running after {timeout:.0f} s", output
                ) from None
            if line is None:
                code = self.process.wait(10)
                raise self._failed(command, f"exited {code}", output)
            if line.strip() == marker:
                text = "".join(output)
                return text[:-1] if text.endswith("\n") else text  # the marker's own newline
            output.append(line)

    @staticmethod
    def _failed(command: Command, what: str, output: list[str]) -> StepFailedError:
        shown = "".join(output)[-4000:]
        where = f"docs/tutorial.md:{command.line}"
        return StepFailedError(f"{where}: `{command.text}` {what}:\n{shown}")

    def close(self) -> None:
        """End bash and every job it started (the tutorial's background worker too)."""
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                time.sleep(0.5)  # the group's other members get the signal at once too
            except subprocess.TimeoutExpired:
                continue
        if self.process.stdin is not None:
            self.process.stdin.close()


# -- the environment the tutorial's reader provides ---------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledMesh:
    """The wheel with the extra the tutorial names ([processing]), from the lock's versions."""
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    return install(wheel, tmp_path_factory.mktemp("tutorial-venv") / "venv", "processing")


@dataclass(frozen=True)
class Mesh:
    bootstrap_servers: str
    registry_url: str
    admin_token: str


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A one-node cluster and a registry that knows only `admin` (the tutorial issues the
    inventory credential itself)."""
    from pydantic import SecretStr

    from mesh_stream.registry.service.server import RegistryServer, build_registry

    admin_token = uuid.uuid4().hex
    with own_cluster(tmp_path_factory.mktemp("tutorial-kafka")) as cluster:
        bootstrap = running(cluster)
        settings = MeshSettings(
            bootstrap_servers=bootstrap,
            registry_credentials=SecretStr(f"admin:{admin_token}"),
            registry_credentials_file=None,
            registry_topic="_mesh_registry-tutorial",
            registry_writer_id="mesh-registry-tutorial",
        )
        app, store = build_registry(settings)
        server = RegistryServer(app)
        try:
            yield Mesh(bootstrap, server.start(), admin_token)
        finally:
            server.stop()
            store.close()


# -- reading the results from this process -----------------------------------------------------


def _settings(mesh: Mesh) -> MeshSettings:
    return MeshSettings(bootstrap_servers=mesh.bootstrap_servers, registry_url=mesh.registry_url)


def _record_count(mesh: Mesh, topic: str) -> int:
    """How many records ``topic`` holds (its high watermarks: nothing is deleted yet)."""
    consumer = Consumer(
        {"bootstrap.servers": mesh.bootstrap_servers, "group.id": f"count-{uuid.uuid4().hex}"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def _read(mesh: Mesh, product: str, *, until: Any, within: float) -> list[dict[str, Any]]:
    """The product's record values in order per partition, read from the oldest until
    ``until(values)`` holds or ``within`` seconds pass."""
    settings = _settings(mesh)
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    with ProductConsumer(
        [product],
        group_id=f"tutorial-check-{uuid.uuid4().hex[:8]}",
        connection=KafkaConnection.from_settings(settings),
        registry=RegistryClient.from_settings(settings),
        from_beginning=True,
        root=None,
    ) as consumer:
        while not until(values) and time.monotonic() < deadline:
            values += [record.value for record in consumer.consume(max_records=100, timeout=1.0)]
    return values


def _recomputed_totals(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What inventory.item-totals must hold per item, computed here from the input."""
    totals: dict[str, dict[str, Any]] = {}
    for event in events:
        item = totals.setdefault(
            event["item_id"],
            {"item_id": event["item_id"], "total_quantity": 0, "updated_at": event["occurred_at"]},
        )
        item["total_quantity"] += event["quantity"]
        item["updated_at"] = max(item["updated_at"], event["occurred_at"])
    return totals


def _newest_per_key(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # Every key lives in one partition, and each partition's records arrive in order.
    return {value["item_id"]: value for value in values}


# -- the test ---------------------------------------------------------------------------------


@dataclass
class Transcript:
    """What each command printed, looked up by what the command says."""

    outputs: list[tuple[Command, str]]

    def of(self, fragment: str) -> str:
        found = [output for command, output in self.outputs if fragment in command.text]
        assert len(found) == 1, f"{len(found)} tutorial commands contain {fragment!r}"
        return found[0]


def _venv_run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """``args`` run in the virtualenv's environment; their stdout, or a failure showing why."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def test_the_tutorial_runs_from_the_installed_wheel_outside_the_repository(
    installed: InstalledMesh, mesh: Mesh, tmp_path: Path
) -> None:
    steps = parse_steps(TUTORIAL.read_text(encoding="utf-8"))
    workdir, home, scripts = tmp_path / "tutorial", tmp_path / "home", tmp_path / "steps"
    for folder in (workdir, home, scripts):
        folder.mkdir()
    assert not workdir.resolve().is_relative_to(REPOSITORY)
    env = installed.env(
        home,
        MESH_BOOTSTRAP_SERVERS=mesh.bootstrap_servers,
        MESH_REGISTRY_URL=mesh.registry_url,
        MESH_ADMIN_TOKEN=mesh.admin_token,
    )

    # The virtualenv has the wheel with the processing extra only, and nothing of this
    # repository.
    def fails_to_import(module: str) -> bool:
        done = subprocess.run(
            ["python", "-c", f"import {module}"],
            cwd=workdir,
            env=env,
            capture_output=True,
            check=False,
        )
        return f"No module named '{module}'".encode() in done.stderr

    assert fails_to_import("domains")
    assert fails_to_import("fastapi")  # the registry extra is not needed by the tutorial
    where = _venv_run(
        ["python", "-c", "import mesh_stream; print(mesh_stream.__file__)"], workdir, env
    )
    assert where.startswith(str(installed.venv)), where

    shell = Shell(workdir, scripts, env)
    transcript = Transcript([])
    try:
        for step in steps:
            if isinstance(step, FileToWrite):
                cwd = Path(os.readlink(f"/proc/{shell.process.pid}/cwd"))
                (cwd / step.path).parent.mkdir(parents=True, exist_ok=True)
                (cwd / step.path).write_text(step.content)
            else:
                transcript.outputs.append((step, shell.run(step)))
        project = Path(os.readlink(f"/proc/{shell.process.pid}/cwd"))
        events = _check_results(mesh, env, project, transcript)
    finally:
        shell.close()

    files = {step.path: step.content for step in steps if isinstance(step, FileToWrite)}
    _another_domain_builds_on_it(mesh, env, tmp_path / "reporting-repo", files, events)


def _check_results(
    mesh: Mesh, env: dict[str, str], project: Path, said: Transcript
) -> list[dict[str, Any]]:
    """With the tutorial's worker still running: exact results, not only exit codes. The
    published input events, read back, are returned."""
    published = _record_count(mesh, "inventory.example-event.v1")
    assert said.of("publisher.py").splitlines()[-1] == f"published 10 records to {EVENTS}"
    assert published == 10
    events = _read(mesh, EVENTS, until=lambda values: len(values) >= published, within=60)
    assert sorted(event["quantity"] for event in events) == list(range(1, 11))

    # What the reader saw: the shell's tail and the Python consumer printed every event.
    tailed = [line for line in said.of(f"mesh tail {EVENTS}").splitlines() if "]@" in line]
    assert len(tailed) == published
    consumed = [line.split() for line in said.of("python consume.py").splitlines()]
    assert sorted((item, int(quantity)) for _p, _o, item, quantity in consumed) == sorted(
        (event["item_id"], event["quantity"]) for event in events
    )
    # where the page says each item's events are (the mesh's partitioner, murmur2)
    placed = {(item, int(partition)) for partition, _o, item, _q in consumed}
    assert placed == {("item-0", 0), ("item-1", 0), ("item-2", 2)}

    # The processor's output: the newest record per key equals the recomputation.
    expected = _recomputed_totals(events)
    totals = _read(
        mesh, TOTALS, until=lambda values: _newest_per_key(values) == expected, within=120
    )
    log = project / "processor.log"
    assert _newest_per_key(totals) == expected, log.read_text()[-4000:] if log.exists() else ""

    # Lineage: the input -> output edge, as the reader saw it and as the registry has it.
    upstream = said.of(f"lineage {TOTALS}").splitlines()
    assert upstream[:3] == [TOTALS, "├── upstream (built from)", f"│   └── {EVENTS}"]
    downstream = said.of(f"lineage {EVENTS}").splitlines()
    assert downstream == [EVENTS, "└── downstream (feeds)", f"    └── {TOTALS}"]

    def mesh_json(*args: str) -> Any:
        return json.loads(_venv_run(["mesh", *args, "--json"], project, env))

    edges = mesh_json("products", "lineage", TOTALS)["edges"]
    assert [(edge["from"], edge["to"]) for edge in edges] == [(EVENTS, TOTALS)]

    # The catalog lists both products, each with the fields of its .avsc.
    listed = mesh_json("products", "list", "--domain", "inventory")
    assert sorted(product["name"] for product in listed) == [EVENTS, TOTALS]
    for name, schema in (
        (EVENTS, "schemas/inventory/example-event.avsc"),
        (TOTALS, "schemas/inventory/item-totals.avsc"),
    ):
        fields = mesh_json("products", "show", name)["fields"]
        declared = json.loads((project / schema).read_text())["fields"]
        assert [(f["name"], f["doc"]) for f in fields] == [(f["name"], f["doc"]) for f in declared]
    return events


def _another_domain_builds_on_it(
    mesh: Mesh,
    env: dict[str, str],
    repo: Path,
    tutorial_files: dict[str, str],
    events: list[dict[str, Any]],
) -> None:
    """A second repository, of the reporting domain, computes the same totals from
    inventory.example-event with its own scaffolded processor, finding the input in the
    registry only (no inventory file in it), from the same installed wheel."""
    mesh_init = _venv_run(["mesh", "init", "reporting", str(repo)], repo.parent, env)
    assert "domain reporting: project in" in mesh_init
    as_admin = {**env, "MESH_REGISTRY_PRINCIPAL": "admin", "MESH_REGISTRY_TOKEN": mesh.admin_token}
    token = _venv_run(
        ["mesh", "registry", "credentials", "add", "reporting", "--quiet"], repo, as_admin
    ).strip()
    env = {**env, "MESH_REGISTRY_PRINCIPAL": "reporting", "MESH_REGISTRY_TOKEN": token}
    output = "reporting.item-totals"
    descriptor = (
        tutorial_files["domains/inventory/products/item-totals.yaml"]
        .replace(f"name: {TOTALS}", f"name: {output}")
        .replace("domain: inventory", "domain: reporting")
        .replace("schemas/inventory/", "schemas/reporting/")
        .replace("inventory-team", "reporting-team")
    )
    assert f"name: {output}" in descriptor
    assert f"  - {EVENTS}" in descriptor  # its input: another domain's product
    (repo / "domains/reporting/products/item-totals.yaml").write_text(descriptor)
    (repo / "schemas/reporting/item-totals.avsc").write_text(
        tutorial_files["schemas/inventory/item-totals.avsc"]
    )
    assert not (repo / "domains" / "inventory").exists()
    # The template reads its own domain's example event; this processor reads inventory's.
    processor = repo / "domains/reporting/processors/example_processor.py"
    template = processor.read_text()
    assert 'EVENTS = "reporting.example-event"' in template
    processor.write_text(template.replace('"reporting.example-event"', f'"{EVENTS}"'))

    applied = _venv_run(["mesh", "products", "apply"], repo, env)
    assert f"{output}: descriptor registered" in applied

    log_path = repo / "processor.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            ["python", "domains/reporting/processors/example_processor.py", "worker"],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            expected = _recomputed_totals(events)
            totals = _read(
                mesh, output, until=lambda values: _newest_per_key(values) == expected, within=120
            )
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
    assert _newest_per_key(totals) == expected, log_path.read_text()[-4000:]
    lineage = json.loads(_venv_run(["mesh", "products", "lineage", EVENTS, "--json"], repo, env))
    assert sorted(edge["to"] for edge in lineage["edges"]) == [TOTALS, output]
