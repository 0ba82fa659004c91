"""`mesh verify` refuses hostile input before any Kafka (hostile-input campaign): a module
that ends the process at import, a registry URL no HTTP client takes, a work folder that is
a device, and flags past their caps, which ``--help`` shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_stream.cli.main import run
from mesh_stream.verify.limits import MAX_KILLS, MAX_RECORDS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)


def mesh(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = run(["verify", *args])
    out, err = capsys.readouterr()
    return status, out + err


def mesh_apart(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mesh verify ARGS` in its own Python, started in ``cwd``: what the module under test
    does to its process cannot end this one."""
    return subprocess.run(
        [sys.executable, "-m", "mesh_stream.cli.main", "verify", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# -- 1: a module that ends the process while it is imported --------------------------------


@pytest.mark.parametrize(
    ("source", "ending"),
    [
        ("import os\nos._exit(0)\n", "(exit status 0)"),
        ("import os\nos._exit(7)\n", "(exit status 7)"),
        (
            "import os, signal, sys\nprint('going down', file=sys.stderr)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            "(killed by signal SIGKILL); its last line on stderr: going down",
        ),
    ],
    ids=["os._exit(0)", "os._exit(7)", "SIGKILL"],
)
def test_a_module_ending_the_process_at_import_is_a_refusal_not_a_pass(
    tmp_path: Path, source: str, ending: str
) -> None:
    """It made `mesh verify` exit with the module's status: 0, read as a pass."""
    (tmp_path / "ends_at_import.py").write_text(source)
    done = mesh_apart(tmp_path, "ends_at_import", "--project", str(REPO))
    assert done.returncode == 2, done
    assert done.stderr.startswith(
        f"Error: module ends_at_import ended the process while being imported {ending}"
    ), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "PASSED" not in done.stdout
    fix = (
        "; `mesh verify` imports it to read PROCESSOR: move what ends the process (os._exit, "
        "say) under `if __name__ == '__main__':`"
    )
    assert (fix in done.stderr) == ("exit status" in ending)


def test_a_module_that_loads_apart_is_then_loaded_here_as_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's import sees this process's sys.path (a folder added at run time), and what
    the module prints at import is shown once, by the import in this process."""
    (tmp_path / "loads_apart.py").write_text(
        "print('imported loads_apart')\n"
        "from mesh_stream.processing.spec import Input, Processor\n"
        "PROCESSOR = Processor(\n"
        "    output='nowhere.thing',\n"
        "    inputs=(Input('orders.order-placed', key=lambda f: 'k', reads=('region',)),),\n"
        "    apply=lambda state, event: None,\n"
        "    emit=lambda key, state: {},\n"
        ")\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "loads_apart", raising=False)
    status, said = mesh(capsys, "loads_apart", "--project", str(REPO))
    assert status == 2  # refused after loading: the project has no such output
    assert said.count("imported loads_apart") == 1, said
    assert "verify nowhere.thing (loads_apart): " in said
    assert "Error: no product 'nowhere.thing' in the descriptors" in said


# -- 2: --registry-url that is not http(s) --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://x", "'ftp://x' must start with http:// or https://"),
        ("file:///tmp/registry", "'file:///tmp/registry' must start with http:// or https://"),
        ("ftp://me:s3cret@x", "'ftp://<hidden>@x' must start with http:// or https://"),
        ("http://", "'http://' has no host name"),
    ],
)
def test_a_registry_url_no_http_client_takes_is_refused_at_once(
    capsys: pytest.CaptureFixture[str], url: str, shown: str
) -> None:
    """Accepted before whenever the run never read the live registry."""
    status, said = mesh(capsys, "any_module", "--registry-url", url)
    assert status == 2
    assert f"Invalid value for '--registry-url': {shown}" in said
    assert "s3cret" not in said


# -- 3: the caps of --records, --from-live and --kills ---------------------------------------


def test_help_shows_the_caps_of_records_from_live_and_kills(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, said = mesh(capsys, "--help")
    assert status == 0
    flat = " ".join(said.split())
    assert re.search(rf"--records INTEGER .*?\[default: 2000; 1<=x<={MAX_RECORDS}\]", flat)
    assert re.search(rf"--from-live INTEGER .*?\[1<=x<={MAX_RECORDS}\]", flat)
    assert re.search(rf"--kills INTEGER .*?\[default: 3; 0<=x<={MAX_KILLS}\]", flat)


@pytest.mark.parametrize(
    ("flag", "value", "cap"),
    [
        ("--records", MAX_RECORDS + 1, f"1<=x<={MAX_RECORDS}"),
        ("--from-live", MAX_RECORDS + 1, f"1<=x<={MAX_RECORDS}"),
        ("--kills", MAX_KILLS + 1, f"0<=x<={MAX_KILLS}"),
    ],
)
def test_a_flag_past_its_cap_is_a_usage_error_naming_the_cap(
    capsys: pytest.CaptureFixture[str], flag: str, value: int, cap: str
) -> None:
    status, said = mesh(capsys, "any_module", flag, str(value))
    assert status == 2
    assert f"Invalid value for '{flag}': {value} is not in the range {cap}" in said


def test_the_cli_does_not_import_the_verify_harness_at_start_up() -> None:
    """The caps come from mesh_stream.verify.limits; importing it (and the package) must not
    load the harness, its sandbox and the registry server into every command's start-up."""
    code = (
        "import json, sys\n"
        "import mesh_stream.cli.main\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mesh_stream.verify'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == ["mesh_stream.verify", "mesh_stream.verify.limits"]


# -- 4: --work-dir that is a device, or under a file -----------------------------------------


def test_a_work_dir_that_is_a_device_is_named_as_not_a_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It said "/dev/null: File exists (FileExistsError)", after generating the input."""
    status, said = mesh(capsys, "any_module", "--work-dir", os.devnull)
    assert status == 2
    assert (
        f"Invalid value for '--work-dir': '{os.devnull}' is a character device, not a folder; "
        "name a folder (it is made if missing), or leave the option out for a temporary one"
    ) in " ".join(said.split())


def test_an_empty_work_dir_is_refused_rather_than_taken_as_the_current_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unset shell variable (`--work-dir "$DIR"`) meant the current folder."""
    status, said = mesh(capsys, "any_module", "--work-dir", "")
    assert status == 2
    assert (
        "Invalid value for '--work-dir': is empty; give a path, or leave the option out to use "
        "a temporary folder, removed when it passes"
    ) in " ".join(said.split())


@pytest.mark.parametrize(
    ("make", "under", "what"),
    [
        (lambda path: path.write_text("x"), True, "a file"),
        (os.mkfifo, False, "a named pipe"),
        (os.mkfifo, True, "a named pipe"),
    ],
    ids=["under-a-file", "a-fifo", "under-a-fifo"],
)
def test_a_work_dir_that_cannot_be_a_folder_names_the_path_in_the_way(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make: Callable[[Path], object],
    under: bool,
    what: str,
) -> None:
    blocker = tmp_path / "blocker"
    make(blocker)
    work_dir = blocker / "work" if under else blocker
    status, said = mesh(capsys, "any_module", "--work-dir", str(work_dir))
    flat = " ".join(said.split())
    assert status == 2
    if under:
        assert f"'{work_dir}' cannot be a folder: '{blocker}' is {what}, not a folder" in flat, flat
    else:
        assert f"'{work_dir}' is {what}, not a folder" in flat, flat


def test_a_device_path_under_dev_null_is_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    status, said = mesh(capsys, "any_module", "--work-dir", f"{os.devnull}/work")
    assert status == 2
    assert f"cannot be a folder: '{os.devnull}' is a character device" in said
    assert "Not a directory" not in said
