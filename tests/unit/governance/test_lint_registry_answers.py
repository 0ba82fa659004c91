"""What `mesh lint` says when MESH_REGISTRY_URL answers but not as a registry (a plain web
server, a body that is not JSON, a Confluent registry without the mesh's routes), and when
it never answers: inputs from other repositories stay unverified warnings that say what
happened, the lint stays local; `--against-registry` makes the same answer an error."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.cli import lint as lint_cli
from mesh_stream.cli.lint import NOT_VERIFIED
from mesh_stream.cli.main import cli, run
from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.governance.registered import unavailable
from mesh_stream.registry.client import RegistryClient
from mesh_stream.scaffold import scaffold
from tests.registry_stubs import answering, serving, silent
from tests.unit.governance.test_lint_registry_inputs import TOTALS, TOTALS_SCHEMA

NOT_A_REGISTRY = (
    "not a mesh-stream registry; set MESH_REGISTRY_URL (or --registry-url) to the URL "
    "`mesh registry serve` prints"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose product is built on orders.stock-event, which lives elsewhere."""
    root = scaffold("inventory", tmp_path / "inventory").root
    (root / "domains/inventory/products/item-totals.yaml").write_text(TOTALS)
    (root / "schemas/inventory/item-totals.avsc").write_text(json.dumps(TOTALS_SCHEMA))
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return root


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def web_server(folder: Path) -> Iterator[str]:
    """`python -m http.server` serving an empty ``folder``: a 404 HTML page for every path."""
    folder.mkdir()
    with serving(functools.partial(_Quiet, directory=str(folder))) as url:
        yield url


Server = Callable[[Path], AbstractContextManager[str]]
NOT_REGISTRIES: list[tuple[Server, str]] = [
    (lambda tmp: web_server(tmp / "site"), "answered 404 with text/html"),
    (lambda _tmp: answering({"/": b"<html>hello</html>"}), "answered 200 with application/json"),
    (  # Confluent's Schema Registry: no /products route
        lambda _tmp: answering({"/": (404, {"error_code": 404, "message": "HTTP 404 Not Found"})}),
        "answered 404 with application/json",
    ),
]
IDS = ["http.server 404 html", "200 not json", "confluent 404 no route"]


@pytest.mark.parametrize(("server", "answered"), NOT_REGISTRIES, ids=IDS)
def test_a_url_that_is_no_registry_leaves_inputs_unverified_and_lints_locally(
    project: Path, tmp_path: Path, server: Server, answered: str
) -> None:
    with server(tmp_path) as url:
        result = CliRunner().invoke(
            cli, ["lint", str(project), "--json"], env={"MESH_REGISTRY_URL": url}
        )
    assert result.exit_code == 0, result.output
    said = f"the registry at {url} {answered}: {NOT_A_REGISTRY}"
    [violation] = json.loads(result.stdout)["violations"]
    assert (violation["policy"], violation["severity"], violation["field"]) == (
        "inputs-exist",
        "warning",
        "inputs[0]",
    )
    assert violation["message"] == (
        f"input 'orders.stock-event' is not in this repository and could not be verified: {said}"
    )
    notes = [line for line in result.stderr.splitlines() if "not verified" in line]
    assert notes == [f"{NOT_VERIFIED}: {said}"]
    assert "error" not in result.stderr.replace("0 error(s)", "")


@pytest.mark.parametrize(("server", "answered"), NOT_REGISTRIES, ids=IDS)
def test_against_registry_a_url_that_is_no_registry_is_one_error_naming_it(
    project: Path,
    tmp_path: Path,
    server: Server,
    answered: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As for an unreachable registry: a comparison that was never made is not a pass."""
    monkeypatch.chdir(project)
    with server(tmp_path) as url:
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        status = run(["lint", "--against-registry"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: cannot compare with the registry at {url}: it {answered}: {NOT_A_REGISTRY}, "
        f"or drop --against-registry"
    )


def test_an_input_the_registry_never_answered_for_is_not_called_unreachable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inputs-exist warning says what happened, in the words of the note on stderr."""
    monkeypatch.setattr(lint_cli, "LOOKUP_TIMEOUT", 0.3)
    with silent() as (url, _accepted):
        result = CliRunner().invoke(
            cli, ["lint", str(project), "--json"], env={"MESH_REGISTRY_URL": url}
        )
    assert result.exit_code == 0, result.output
    said = (
        f"the registry at {url} accepted the connection but did not answer GET "
        f"/products/orders.stock-event within 0.3 s; it is up but busy or stuck (a slow Kafka "
        f"under it?), or MESH_REGISTRY_URL points at something else that listens; check it and "
        f"run again"
    )
    [violation] = json.loads(result.stdout)["violations"]
    assert violation["message"] == (
        f"input 'orders.stock-event' is not in this repository and could not be verified: {said}"
    )
    assert f"{NOT_VERIFIED}: {said}" in result.stderr
    assert "unreachable" not in result.stdout + result.stderr


def test_the_client_records_which_call_went_unanswered_and_how_long_it_waited() -> None:
    with (
        silent() as (url, _accepted),
        RegistryClient(url, timeout=0.2, retry_seconds=0) as client,
        pytest.raises(RegistryUnavailableError) as raised,
    ):
        client.get_product("orders.stock-event")
    error = raised.value
    assert (error.why, error.request, error.waited, error.attempts) == (
        "unanswered",
        "GET /products/orders.stock-event",
        0.2,
        1,
    )


def test_unavailable_words_a_timeout_from_the_errors_fields_not_its_message() -> None:
    """Rewording the client's message must not change (or break) what lint says."""
    error = RegistryUnavailableError("the registry went quiet", status=503, error_code=50302)
    error.why, error.request, error.waited, error.attempts = "unanswered", "GET /subjects", 2.5, 3
    said, _fix = unavailable(error)
    assert (
        said == "accepted the connection but did not answer GET /subjects within 2.5 s (3 attempts)"
    )
