"""`mesh verify` refuses what it cannot run with one line and exit status 2, before any Kafka."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mesh_stream.cli.main import run
from mesh_stream.cli.verify import processor_module
from mesh_stream.errors import ConfigurationError
from mesh_stream.project import load_project
from mesh_stream.verify.harness import load_processor

REPO = Path(__file__).resolve().parents[3]


def mesh(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = run(["verify", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_help_says_it_runs_on_its_own_throwaway_kafka_and_what_exit_statuses_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = mesh(capsys, "--help")
    assert status == 0
    flat = " ".join(out.split())
    assert "throwaway single-node Kafka and registry that it starts itself" in flat
    assert "never on your mesh's broker" in flat
    for flag in ("--records", "--from-live", "--kills", "--workers", "--seed", "--timeout"):
        assert flag in out
    assert "Exit status: 0 every key's final record equals the recomputation; 1" in flat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module_here"], "Error: no module 'no_such_module_here'"),
        (["json"], "Error: json has no PROCESSOR = Processor(...)"),
        ([""], "Error: '' is not a Python module name"),
    ],
)
def test_a_module_that_is_no_processor_is_exit_2_in_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status, _, err = mesh(capsys, *args, "--project", str(REPO))
    assert status == 2
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_flags_out_of_range_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = mesh(capsys, "m", "--workers", "3")
    assert status == 2
    assert "--workers" in err
    assert "Traceback" not in err


def test_records_and_from_live_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--from-live 5 --records 10` was taken, --records silently ignored."""
    status, _, err = mesh(capsys, "m", "--from-live", "5", "--records", "10")
    assert status == 2
    assert "Error: --records is how many records to generate; --from-live N reads" in err


def test_a_processor_whose_output_the_project_lacks_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere_processor.py").write_text(
        "from mesh_stream.processing.spec import Input, Processor\n"
        "PROCESSOR = Processor(\n"
        "    output='nowhere.thing',\n"
        "    inputs=(Input('orders.order-placed', key=lambda f: 'k', reads=('region',)),),\n"
        "    apply=lambda state, event: None,\n"
        "    emit=lambda key, state: {},\n"
        ")\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = mesh(capsys, "elsewhere_processor", "--project", str(REPO))
    assert status == 2
    assert err.startswith("Error: no product 'nowhere.thing' in the descriptors")


def test_a_processor_reading_an_undeclared_input_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "undeclared_processor.py").write_text(
        "from mesh_stream.processing.spec import Input, Processor\n"
        "PROCESSOR = Processor(\n"
        "    output='analytics.revenue-by-region',\n"
        "    inputs=(Input('payments.payment-failed', key=lambda f: 'k', reads=('reason',)),),\n"
        "    apply=lambda state, event: None,\n"
        "    emit=lambda key, state: {},\n"
        ")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = mesh(capsys, "undeclared_processor", "--project", str(REPO))
    assert status == 2
    assert err.strip() == (
        "Error: processor of analytics.revenue-by-region reads payments.payment-failed, which "
        "its descriptor does not list in `inputs`; add it there"
    )


def test_a_processor_leaving_an_input_of_its_descriptor_unread_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker read every input its descriptor lists and crashed with a raw KeyError at
    the first record of one the processor did not declare; verify waited 120 s for that
    input's registration (a processor team's campaign). Both refuse it at once now."""
    (tmp_path / "partial_processor.py").write_text(
        "from mesh_stream.processing.spec import Input, Processor\n"
        "PROCESSOR = Processor(\n"
        "    output='analytics.customer-360',\n"
        "    inputs=(Input('orders.order-placed', key=lambda f: 'k', reads=('region',)),),\n"
        "    apply=lambda state, event: None,\n"
        "    emit=lambda key, state: {},\n"
        ")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = mesh(capsys, "partial_processor", "--project", str(REPO))
    assert status == 2
    assert err.strip() == (
        "Error: analytics.customer-360 lists customers.customer-profile, "
        "customers.engagement-event in its descriptor's `inputs`, which its processor does "
        "not read: add an Input for it, or remove it from the descriptor's `inputs` (its "
        "lineage says what the product is built from)"
    )


def test_an_output_product_the_runnables_map_names_its_module() -> None:
    project = load_project(REPO)
    assert (
        processor_module("analytics.revenue-by-region", project)
        == "domains.analytics.processors.revenue"
    )
    assert processor_module("tests.integration.workers.verify_revenue", project) == (
        "tests.integration.workers.verify_revenue"
    )


def test_an_output_product_no_runnable_runs_is_named_as_a_product(tmp_path: Path) -> None:
    """Not "'x.y-z' is not a Python module name": the user gave a product name."""
    (tmp_path / "mesh.yaml").write_text("domains: [shop]\n")
    project = load_project(tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        processor_module("shop.order-totals", project)
    assert str(caught.value) == (
        f"no processor for product shop.order-totals is listed in {tmp_path / 'mesh.yaml'} "
        "(it sets no `runnables`); give the processor's module instead (e.g. "
        "domains.shop.processors.order_totals)"
    )
    with pytest.raises(ConfigurationError, match="listed in the project's runnables"):
        processor_module("analytics.no-such-output", load_project(REPO))


@pytest.mark.parametrize(
    ("source", "raised"),
    [("def runnables(:\n", "SyntaxError: "), ("import sys\nsys.exit(0)\n", "SystemExit: 0")],
    ids=["syntax error", "sys.exit(0) at import"],
)
def test_a_broken_runnables_module_is_named_not_taken_for_a_module_name(
    source: str, raised: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "'shop.order-totals' is not a Python module name" (hostile-input campaign 2);
    a module that exits at import would have ended `mesh verify` with its status, 0 a pass."""
    (tmp_path / "mesh.yaml").write_text("domains: [shop]\nrunnables: shop_runnables\n")
    (tmp_path / "shop_runnables.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shop_runnables", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        processor_module("shop.order-totals", load_project(tmp_path))
    assert str(caught.value).startswith(
        "cannot find the processor of shop.order-totals: the project's runnables "
        f"(shop_runnables) failed: {raised}"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("PROCESSOR = 42\n", "{name}.PROCESSOR is int, not a Processor(...)"),
        (
            "class Stop(BaseException):\n    pass\nraise Stop('no')\n",
            "{path}:3: {name}: importing it raised Stop: no",
        ),
        (  # a syntax error: its file and line (it said only the file's base name, h49)
            "PROCESSOR = 1\nif True\n",
            "{path}:2: {name}: not valid Python: expected ':'",
        ),
        (  # a declaration refused at import: where it is (it named neither file nor line)
            "from mesh_stream.processing import Tumbling\n\nWINDOW = Tumbling(size_ms=0)\n",
            "{path}:3: Tumbling size_ms must be > 0, got 0",
        ),
    ],
)
def test_a_module_with_a_wrong_processor_or_a_base_exception_is_a_clear_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, message: str
) -> None:
    name = f"verify_hostile_{abs(hash(source)) % 10_000}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        load_processor(name)
    path = tmp_path / f"{name}.py"
    assert str(caught.value).startswith(message.format(name=name, path=path))


def revenue_variant(tmp_path: Path, name: str, change: str) -> str:
    """A module declaring the sample's revenue processor with ``change`` applied to it."""
    (tmp_path / f"{name}.py").write_text(
        "import dataclasses\n"
        "from domains.analytics.processors.revenue import PROCESSOR as CORRECT\n"
        f"{change}\n",
        encoding="utf-8",
    )
    return name


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        (
            "def apply(state, event):\n"
            "    raise ValueError(f'no revenue in {event.fields[\"region\"]}')\n"
            "PROCESSOR = dataclasses.replace(CORRECT, apply=apply)",
            r"FAILED: processor analytics\.revenue-by-region on generated record #\d+ of "
            r"orders\.order-placed: apply raised ValueError no revenue in \S+ \(raised at "
            r"\S+failing_\d+\.py:\d+\) \(seed 3\)",  # the line of the team's own code
        ),
        (
            "inputs = (dataclasses.replace(CORRECT.inputs[0], key=lambda f: f['channel']),)\n"
            "PROCESSOR = dataclasses.replace(CORRECT, inputs=inputs)",
            r"FAILED: processor analytics\.revenue-by-region on generated record #\d+ of "
            r"orders\.order-placed: key raised KeyError 'channel': field 'channel' of "
            r"orders\.order-placed is not in the input's `reads` .* add it there \(seed 3\)",
        ),
        (
            "def emit(key, state):\n"
            "    return {**CORRECT.emit(key, state), 'order_count': str(state['order_count'])}\n"
            "PROCESSOR = dataclasses.replace(CORRECT, emit=emit)",
            r"FAILED: processor analytics\.revenue-by-region: emit's record of key '\S+' \(after "
            r"its state took generated record #\d+ of orders\.order-placed\) does "
            r"not fit the output's schema \(\S+\): order_count: expected \w+, got str '\d+'; "
            r"the engine cannot publish it",
        ),
    ],
    ids=["apply-raises", "key-reads-an-undeclared-field", "emit-does-not-fit"],
)
def test_the_processors_own_error_fails_it_with_its_record_before_any_kafka(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    failure: str,
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = revenue_variant(tmp_path, f"failing_{len(change)}", change)
    status, out, err = mesh(
        capsys, module, "--project", str(REPO), "--records", "20", "--kills", "0", "--seed", "3"
    )
    assert status == 1, out + err  # the processor fails: not a usage error, not a mesh bug
    assert re.search(f"^{failure}", out, re.MULTILINE), out
    assert "bug in mesh" not in out + err
    assert "Traceback" not in out + err
    assert "throwaway Kafka" not in out  # found before the sandbox starts
    # with --kills 0 nothing is killed, and the run says so
    assert "note: --kills 0: no worker is killed, so restarts and replays go untested" in out


def test_a_file_path_for_a_module_is_refused_with_its_dotted_name() -> None:
    """`mesh verify domains/inventory/processors/totals.py` said only that it is no module
    name (processor campaign)."""
    from mesh_stream.verify.loading import check_module_name

    with pytest.raises(ConfigurationError) as refused:
        check_module_name("./domains/inventory/processors/totals.py")
    assert str(refused.value) == (
        "'./domains/inventory/processors/totals.py' is not a Python module name; give a dotted "
        "module such as domains.inventory.processors.totals"
    )
