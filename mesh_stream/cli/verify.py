"""`mesh verify PROCESSOR`: the restart-correctness check of a processor, for any team."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import stat
import sys
from pathlib import Path

import click

from mesh_stream.cli.options import (
    FiniteFloatRange,
    NonEmptyPath,
    ProjectChoice,
    WholeNumberRange,
    checked_bootstrap_servers,
    checked_registry_url,
    project_option,
)
from mesh_stream.cli.signals import terminate_as_interrupt
from mesh_stream.descriptor import PRODUCT_NAME
from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.project import MeshProject
from mesh_stream.settings import MeshSettings
from mesh_stream.verify.limits import MAX_KILLS, MAX_RECORDS

#: Exit statuses: the outputs equal the recomputation / they do not, a worker crashed, or the
#: processor's own key, apply or emit failed / the run could not be made (usage,
#: configuration, the sandbox would not start).
PASSED, FAILED, UNUSABLE = 0, 1, 2


def processor_module(name: str, project: MeshProject) -> str:
    """``name`` itself, or the module the project's runnables run for output product ``name``."""
    if "-" not in name:
        return name
    if project.runnables is not None:
        try:
            listed = importlib.import_module(project.runnables).runnables(1.0)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a '-' is in no module name: the runnables must say
            # (sys.exit in that module too: its status must not pass for the verdict)
            raise ConfigurationError(
                f"cannot find the processor of {name}: the project's runnables "
                f"({project.runnables}) failed: {type(exc).__name__}: {exc}; fix that module, "
                f"or give the processor's module instead (e.g. {_example_module(name)})"
            ) from exc
        for runnable in listed:
            argv = list(getattr(runnable, "argv", []))
            if getattr(runnable, "name", None) == name and "-m" in argv[:-1]:
                return str(argv[argv.index("-m") + 1])
    if PRODUCT_NAME.match(name):  # an output product no runnable of this project runs
        where = (
            f"the project's runnables ({project.runnables})"
            if project.runnables is not None
            else f"{project.root / 'mesh.yaml'} (it sets no `runnables`)"
        )
        raise ConfigurationError(
            f"no processor for product {name} is listed in {where}; give the processor's "
            f"module instead (e.g. {_example_module(name)})"
        )
    return name


def _example_module(product: str) -> str:
    """Where ``mesh init``'s layout puts the processor of ``product`` (an example to give)."""
    found = PRODUCT_NAME.match(product)
    if found is None:
        return "domains.<domain>.processors.<module>"
    short = product.split(".", 1)[1].replace("-", "_").replace(".", "_")
    return f"domains.{found.group('domain')}.processors.{short}"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISREG: "a file",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def _checked_work_dir(
    _ctx: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    """``--work-dir``: a folder, or a path where one can be made. A device (``/dev/null``) or
    a path under a file is refused by name here, instead of by mkdir's "File exists" after the
    input was generated (click's Path refuses a regular file itself)."""
    if value is None:
        return None
    for place in (value, *value.parents):
        try:
            mode = place.stat().st_mode
        except OSError:  # missing, or under a file (its parent, checked next, says so)
            continue
        if stat.S_ISDIR(mode):
            return value
        what = _kind(mode)
        if place == value:
            raise click.BadParameter(
                f"{str(value)!r} is {what}, not a folder; name a folder (it is made if "
                f"missing), or leave the option out for a temporary one",
                param=param,
            )
        raise click.BadParameter(
            f"{str(value)!r} cannot be a folder: {str(place)!r} is {what}, not a folder; name "
            f"a folder (it is made if missing), or leave the option out for a temporary one",
            param=param,
        )
    return value


@click.command(
    "verify", short_help="Kill and restart a processor at random points; compare its outputs."
)
@click.argument("processor")
@click.option(
    "--records",
    type=WholeNumberRange(1, MAX_RECORDS),
    default=2_000,
    show_default=True,
    help="Records generated per input (plus copies of some). Keys and other values come "
    "from pools of records/50 values (3 to 30): below about 1,500 records fewer keys are "
    "checked.",
)
@click.option(
    "--from-live",
    "from_live",
    type=WholeNumberRange(1, MAX_RECORDS),
    help="Instead of generating, take the last N records of each live input topic "
    "(MESH_BOOTSTRAP_SERVERS, MESH_REGISTRY_URL); they are only read.",
)
@click.option(
    "--kills",
    type=WholeNumberRange(0, MAX_KILLS),
    default=3,
    show_default=True,
    help="SIGKILLs (each costs a worker restart, a few seconds).",
)
@click.option(
    "--workers",
    type=WholeNumberRange(1, 2),
    default=1,
    show_default=True,
    help="2: a second worker joins during a batch (a rebalance) and kills pick a worker.",
)
@click.option(
    "--seed", type=int, help="Seed of the input and the kill schedule. [default: random, printed]"
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=1),
    default=180.0,
    show_default=True,
    help="Seconds the workers get to drain the input after the last kill.",
)
@click.option(
    "--show",
    type=WholeNumberRange(min=1),
    default=20,
    show_default=True,
    help="Differing keys printed at most.",
)
@click.option(
    "--work-dir",
    type=NonEmptyPath(
        file_okay=False, path_type=Path, hint="use a temporary folder, removed when it passes"
    ),
    callback=_checked_work_dir,
    help="Folder for the throwaway Kafka's data and the worker logs (kept). [default: a "
    "temporary folder, removed when the processor passes]",
)
@project_option
@click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka of the live mesh, read by --from-live only. [env: MESH_BOOTSTRAP_SERVERS]",
)
@click.option(
    "--registry-url",
    callback=checked_registry_url,
    help="Registry of the live mesh: inputs the project lacks, --from-live's schemas. "
    "[env: MESH_REGISTRY_URL]",
)
@click.pass_obj
def verify(
    settings: MeshSettings,
    processor: str,
    records: int,
    from_live: int | None,
    kills: int,
    workers: int,
    seed: int | None,
    timeout: float,
    show: int,
    work_dir: Path | None,
    project: ProjectChoice,
    bootstrap_servers: str | None,
    registry_url: str | None,
) -> int:
    """Run PROCESSOR's workers through SIGKILLs and a rebalance, then compare every key's final
    output record with a recomputation by the processor's own functions.

    PROCESSOR is a module declaring PROCESSOR = Processor(...), importable from the current
    folder or the project root (e.g. domains.analytics.processors.revenue), or an output
    product the project's runnables map to its module.

    It runs on a throwaway single-node Kafka and registry that it starts itself (the
    launcher of `mesh broker start`, free ports, no governance) and deletes afterwards:
    never on your mesh's broker, so it cannot disturb a running mesh. The input is
    generated from each input product's schema (the project's .avsc, else the live
    registry's) with duplicates, late records and several partitions, or, with
    --from-live N, read from the live topics.

    Exit status: 0 every key's final record equals the recomputation; 1 the processor fails:
    some key differs, is missing or unexpected, its recomputation is not deterministic or
    depends on the order of partitions, a worker crashed, or its own key, apply or emit
    raised or broke its contract (the keys, the crash line or the error are printed); 2 the
    run could not be made (usage, configuration, the sandbox did not start).
    """
    given = click.get_current_context().get_parameter_source("records")
    if from_live is not None and given is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(
            "--records is how many records to generate; --from-live N reads N live records "
            "per input instead: give one of them"
        )
    updates = {"bootstrap_servers": bootstrap_servers, "registry_url": registry_url}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    chosen_seed = seed if seed is not None else random.SystemRandom().randrange(10**6)
    # SIGTERM unwinds like Ctrl-C, so the throwaway Kafka and the workers are stopped.
    signals = contextlib.ExitStack()
    signals.enter_context(terminate_as_interrupt())
    # The sandbox registry's role notes ("this instance is the writer") mean nothing here.
    registry_log = logging.getLogger("mesh_stream.registry")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        found = project.find(settings)
        for folder in (str(found.root), os.getcwd()):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        module = processor_module(processor, found)
        from mesh_stream.verify.loading import import_apart, load_processor

        # The module's first import runs apart (its code may end the process, which no
        # `except` sees), while this process imports the heavy harness.
        with import_apart(module) as probe:
            from mesh_stream.verify import VerifyOptions
            from mesh_stream.verify import verify as run_verify

            probe.wait()
        declared = load_processor(module)
        options = VerifyOptions(
            module=module,
            records=records,
            seed=chosen_seed,
            kills=kills,
            workers=workers,
            from_live=from_live,
            timeout=timeout,
            show=show,
            work_dir=work_dir,
        )
        source = f"last {from_live} live records" if from_live else f"{records} records"
        click.echo(
            f"verify {declared.output} ({module}): {source} per input, seed {chosen_seed}, "
            f"{kills} kills, {workers} worker{'s' if workers > 1 else ''}"
        )
        if kills == 0:
            click.echo(
                "note: --kills 0: no worker is killed, so restarts and replays go untested; "
                "the run checks the outputs of an undisturbed run only"
            )
        result = run_verify(
            declared,
            options,
            settings=settings,
            project=found,
            worker_env=os.environ,
            worker_cwd=Path.cwd(),
            progress=click.echo,
        )
    except ProcessorError as exc:
        # The processor's own code failed on a record: its verdict, not a refusal.
        click.secho(f"FAILED: {exc} (seed {chosen_seed})", fg="red")
        return FAILED
    except Exception as exc:
        from mesh_stream.cli.main import explain

        message = explain(exc)
        if message is None:
            raise
        # Status 2 is click's usage-error status, and reads like one.
        click.secho(f"Error: {message}", fg="red", err=True)
        return UNUSABLE
    finally:
        signals.close()
        registry_log.setLevel(level)
    for line in result.lines:
        click.echo(line)
    if result.failure is not None:
        click.secho(f"FAILED: {result.failure}", fg="red")
    if result.work_dir is not None:
        click.echo(f"worker logs and Kafka data kept in {result.work_dir}")
    if result.passed:
        click.secho(f"PASSED (seed {chosen_seed})", fg="green")
        return PASSED
    if result.failure is None:
        why = "outputs differ from the recomputation"
        if result.nondeterministic is not None:
            why = "the processor is not deterministic (see NOT DETERMINISTIC above)"
        elif result.order_dependent is not None:
            why = "the processor depends on the order of partitions (see ORDER-DEPENDENT above)"
        if result.nondeterministic is None and result.order_dependent is None:
            click.echo(
                "hint: the recomputation runs in this process, the workers in others; a key, "
                "apply or emit that gives other results in another process (Python's hash() "
                "of a str changes per process: use zlib.crc32 or hashlib) differs only here, "
                "as does an apply that counts an event replayed after a kill twice, or one "
                "that depends on the order of events from different partitions in a way this "
                "run's reordered recomputations did not show (run again with more --records)"
            )
        click.secho(f"FAILED: {why} (seed {chosen_seed})", fg="red")
    return FAILED


__all__ = ["processor_module", "verify"]
