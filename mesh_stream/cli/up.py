"""`mesh up`: the whole mesh in one command, in the foreground, until Ctrl-C.

In order: Kafka (the local broker from MESH_DATA_DIR/broker, started unless
MESH_BOOTSTRAP_SERVERS names a cluster or a local one already runs), the registry (a
supervised `mesh registry serve` unless MESH_REGISTRY_URL already answers), every product
topic, schema and descriptor from ``domains/`` (idempotent, sources before what is built
from them), then every simulator and processor that ``domains/runnables.py`` lists, each a
supervised child with its log in MESH_DATA_DIR/logs. Then the live view
(:mod:`mesh_stream.liveview`) until Ctrl-C, SIGTERM or ``--duration``; stopping goes
processors, simulators, registry, then the broker that `mesh up` itself started.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import click
import httpx
from rich.console import Console

from mesh_stream.broker import ClusterState, ClusterStatus, LocalCluster, local_cluster
from mesh_stream.descriptor import DataProduct, ProductKind, load_descriptors
from mesh_stream.errors import (
    BrokerError,
    ConfigurationError,
    MeshError,
    RegistryError,
    RegistryUnavailableError,
)
from mesh_stream.liveview import (
    Decoder,
    LiveView,
    LogErrorCounter,
    MeshMonitor,
    MeshSnapshot,
    ViewContext,
    registry_decoder,
    render,
    render_text,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from mesh_stream.supervisor import (
    Backoff,
    ChildSpec,
    ChildState,
    ChildStatus,
    EventKind,
    Supervisor,
    SupervisorEvent,
)

RESTART_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=30.0, stable_after=60.0)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")
REGISTRY_READY_TIMEOUT = 90.0
SAMPLE_INTERVAL = 2.0
#: What `--fresh` erases below MESH_DATA_DIR (besides the broker's own folder).
FRESH_FOLDERS = ("processors", "logs")


def topological(products: Sequence[DataProduct]) -> list[DataProduct]:
    """Products ordered so each comes after its inputs (sources first); stable by name."""
    by_name = {p.name: p for p in products}
    ordered: list[DataProduct] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(product: DataProduct) -> None:
        if product.name in done:
            return
        if product.name in visiting:
            raise ConfigurationError(
                f"{product.name}: inputs form a cycle through {product.name}; lineage must "
                f"be a DAG (fix `inputs` in domains/{product.domain}/products/)"
            )
        visiting.add(product.name)
        for name in product.inputs:
            if name in by_name:
                visit(by_name[name])
        visiting.discard(product.name)
        done.add(product.name)
        ordered.append(product)

    for product in sorted(products, key=lambda p: (p.kind != ProductKind.SOURCE_ALIGNED, p.name)):
        visit(product)
    return ordered


def domain_of(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The domain a runnable belongs to: its MESH_REGISTRY_PRINCIPAL, or ``-m domains.<d>``."""
    if env.get("MESH_REGISTRY_PRINCIPAL"):
        return env["MESH_REGISTRY_PRINCIPAL"]
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1].startswith("domains."):
            return argv[index + 1].split(".")[1]
    return None


def registry_credentials(path: Path, principals: Sequence[str]) -> dict[str, str]:
    """Tokens of the local registry (``admin`` and one per domain), kept in ``path``.

    Created once with random tokens (file mode 0600) and reused, so a second `mesh up`
    and the children of the first agree on them.
    """
    tokens: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigurationError(
                f"{path} is not valid JSON ({exc}); delete it and `mesh up` writes a new one"
            ) from exc
        tokens = {str(k): str(v) for k, v in loaded.items()}
    missing = [p for p in principals if p not in tokens]
    if missing:
        for principal in missing:
            tokens[principal] = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tokens, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
    return tokens


def probe_registry(url: str, timeout: float = 2.0) -> bool:
    """True when a registry answers at ``url``; False when nothing listens there.

    Raises :class:`ConfigurationError` when something else answers (a port clash).
    """
    try:
        response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout)
    except httpx.TransportError:
        return False
    if response.status_code in (401, 403):
        return True  # a registry whose reads need a credential
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, list):
        return True
    raise ConfigurationError(
        f"something that is not a mesh registry answers at {url} (GET /subjects gave HTTP "
        f"{response.status_code}); stop it, or point MESH_REGISTRY_URL elsewhere"
    )


def _probe_kafka(bootstrap_servers: str, timeout: float = 10.0) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        raise BrokerError(
            f"Kafka does not answer at MESH_BOOTSTRAP_SERVERS={bootstrap_servers} ({exc}); "
            f"start that cluster, or unset MESH_BOOTSTRAP_SERVERS to let `mesh up` run a "
            f"local broker"
        ) from exc


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """Refuse a second `mesh up` on the same MESH_DATA_DIR (it would double every child)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "mesh-up.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "?"
            raise ConfigurationError(
                f"another `mesh up` (pid {owner}) already runs from {data_dir}; stop it with "
                f"Ctrl-C, or give this one its own MESH_DATA_DIR"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Cluster(Protocol):
    """What :class:`BrokerWatch` needs of :class:`~mesh_stream.broker.LocalCluster`."""

    def status(self) -> ClusterStatus: ...

    def start(
        self, *, brokers: int = 1, port: int = 9092, timeout: float = 90.0, fresh: bool = False
    ) -> ClusterState: ...

    def log_file(self, node_id: int) -> Path: ...


class BrokerWatch:
    """Notices when the local broker `mesh up` started has died, reports it, and starts it
    again (same data, same ports) after the same exponential back-off as the children."""

    def __init__(
        self,
        cluster: _Cluster,
        supervisor: Supervisor,
        *,
        port: int,
        timeout: float,
        backoff: Backoff,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.supervisor = supervisor
        self.port = port
        self.timeout = timeout
        self.backoff = backoff
        self.interval = interval
        self._clock = clock
        self.failures = 0
        self.restarts = 0
        self._started_at = clock()
        self._next_check = self._started_at + interval
        self._restart_at: float | None = None

    def check(self) -> None:
        """Call often; does real work only every ``interval`` or when a restart is due."""
        now = self._clock()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restart_at = None
                self._restart()
            return
        if now < self._next_check:
            return
        self._next_check = now + self.interval
        if not self.cluster.status().running:
            self._failed(now, "Kafka stopped running")

    def _restart(self) -> None:
        try:
            state = self.cluster.start(brokers=1, port=self.port, timeout=self.timeout)
        except MeshError as exc:
            self._failed(self._clock(), f"Kafka did not come back: {exc}")
            return
        self._started_at = self._clock()
        self._next_check = self._started_at + self.interval
        self.supervisor.record(
            "kafka",
            EventKind.RESTARTED,
            f"restarted (restart #{self.restarts}) at {state.bootstrap_servers}",
        )

    def _failed(self, now: float, what: str) -> None:
        stable = now - self._started_at >= self.backoff.stable_after
        self.failures = 1 if stable else self.failures + 1
        delay = self.backoff.delay(self.failures)
        self.restarts += 1
        self._restart_at = now + delay
        self.supervisor.record(
            "kafka",
            EventKind.EXITED,
            f"{what}; restart #{self.restarts} in {delay:.1f}s (log: {self.cluster.log_file(1)})",
            restart_in=delay,
        )


def broker_status(cluster: _Cluster, watch: BrokerWatch | None) -> ChildStatus:
    """The local broker as a row of the live view's process table."""
    status = cluster.status()
    node = status.nodes[0] if status.nodes else None
    return ChildStatus(
        name="kafka",
        kind="broker",
        state=ChildState.RUNNING if status.running else ChildState.RESTARTING,
        pid=node.pid if node is not None and node.running else None,
        restarts=watch.restarts if watch is not None else 0,
        last_exit=None,
        log_file=cluster.log_file(1),
    )


@dataclass
class UpOptions:
    """The command-line choices of one `mesh up` (settings come separately)."""

    rate: float
    seed: int
    fresh: bool
    view: bool
    duration: float | None
    root: Path
    register_only: bool = False


@dataclass
class _Run:
    """What this `mesh up` started, so it stops exactly that."""

    cluster: LocalCluster | None = None
    supervisor: Supervisor | None = None
    monitor: MeshMonitor | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class MeshUp:
    """One `mesh up` run: start in stages, watch, stop in order (see the module docstring)."""

    def __init__(self, settings: MeshSettings, options: UpOptions, out: TextIO | None = None):
        self.settings = settings
        self.options = options
        self.out = out or sys.stderr
        self.log_dir = settings.data_dir / "logs"
        self._stop = threading.Event()
        self._starting = True
        self._signals = 0
        self._run = _Run()

    # -- output ----------------------------------------------------------------------------
    def _emit(self, message: str, colour: str | None = None) -> None:
        """Print, unless the terminal or pipe is gone: losing output must never stop shutdown
        (Ctrl-C on `mesh up | tee log` kills `tee` first)."""
        try:
            click.secho(message, file=self.out, fg=colour)
        except (BrokenPipeError, OSError, ValueError):
            self.out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as this run

    def say(self, message: str) -> None:
        self._emit(message)

    def note(self, message: str) -> None:
        """Something `mesh up` skips or cannot do: said now and kept on the live view."""
        self._run.notes.append(message)
        self._emit(message, "yellow")

    def _on_event(self, event: SupervisorEvent) -> None:
        if not self.options.view or self._starting or self._stop.is_set():
            self._emit(event.line(), "red" if event.is_problem else None)

    # -- signals ---------------------------------------------------------------------------
    def _handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        self._stop.set()
        if self._signals > 1 and self._run.supervisor is not None:
            self.say("second signal: killing every child now")
            self._run.supervisor.kill()
            return
        if self._starting:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    # -- run -------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, show the view, stop everything. Returns the exit status."""
        previous = {
            sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with single_instance(self.settings.data_dir):
                try:
                    self._start_all()
                    self._starting = False
                    if not self._stop.is_set():
                        self._watch()
                except KeyboardInterrupt:
                    self.say("interrupted during start-up; stopping what was started")
                finally:
                    self._starting = False
                    self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _start_all(self) -> None:
        root = self.options.root.resolve()
        domains_dir = root / "domains"
        if not domains_dir.is_dir():
            raise ConfigurationError(
                f"no domains/ folder in {root}; run `mesh up` from the repository root or "
                f"pass --root"
            )
        products = topological(load_descriptors(domains_dir))
        if not products:
            raise ConfigurationError(f"no product descriptors under {domains_dir}/*/products/")
        if self.options.fresh:
            self._refuse_fresh_on_a_foreign_cluster()
        bootstrap = self._start_broker()
        self._run.supervisor = Supervisor(
            [],
            self.log_dir,
            env=self._child_env(bootstrap),
            backoff=RESTART_BACKOFF,
            on_event=self._on_event,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        domains = sorted({p.domain for p in products})
        url, tokens = self._start_registry(domains)
        self._prepare_products(bootstrap, url, tokens, products, root)
        self._bootstrap = bootstrap
        self._registry_url = url
        if self.options.register_only:
            self._stop.set()
            return
        self._start_runnables(root, tokens)
        self._run.monitor = MeshMonitor(bootstrap, products, decoder=self._decoder(url, tokens))

    # -- stage 1: Kafka --------------------------------------------------------------------
    def _refuse_fresh_on_a_foreign_cluster(self) -> None:
        if self.settings.bootstrap_servers:
            raise ConfigurationError(
                f"--fresh erases the local broker's data, but MESH_BOOTSTRAP_SERVERS="
                f"{self.settings.bootstrap_servers} points at another cluster that `mesh up` "
                f"does not own; delete its topics yourself, or unset MESH_BOOTSTRAP_SERVERS"
            )

    def _erase_folders(self) -> None:
        for name in FRESH_FOLDERS:
            folder = self.settings.data_dir / name
            if folder.exists():
                shutil.rmtree(folder)
                self.say(f"--fresh: erased {folder}")

    def _start_broker(self) -> str:
        if self.settings.bootstrap_servers:
            servers = self.settings.bootstrap_servers
            self.say(f"Kafka: using the cluster at MESH_BOOTSTRAP_SERVERS={servers}")
            _probe_kafka(servers)
            return servers
        cluster = local_cluster(self.settings, progress=self.say)
        status = cluster.status()
        if status.running and status.bootstrap_servers:
            if self.options.fresh:
                raise ConfigurationError(
                    f"--fresh cannot erase the broker that already runs from {cluster.data_dir} "
                    f"(pid {', '.join(map(str, status.pids))}); stop it with `mesh broker stop`"
                )
            self.say(
                f"Kafka: reusing the local broker already running at {status.bootstrap_servers} "
                f"(it keeps running after `mesh up` stops)"
            )
            return status.bootstrap_servers
        if self.options.fresh:
            self._erase_folders()  # the broker's own data goes with start(fresh=True)
        self._run.cluster = cluster
        state = cluster.start(
            brokers=1,
            port=self.settings.broker_port,
            timeout=self.settings.broker_start_timeout,
            fresh=self.options.fresh,
        )
        self.say(f"Kafka: local broker at {state.bootstrap_servers}, data in {cluster.data_dir}")
        return state.bootstrap_servers

    def _child_env(self, bootstrap: str) -> dict[str, str]:
        env = dict(os.environ)
        env["MESH_BOOTSTRAP_SERVERS"] = bootstrap
        env["MESH_REGISTRY_URL"] = self.settings.registry_url
        env["MESH_DATA_DIR"] = str(self.settings.data_dir)
        # The registry `mesh up` starts enforces this repository's policies, overrides included.
        env.setdefault("MESH_GOVERNANCE_ROOT", str(self.options.root.resolve()))
        return env

    # -- stage 2: registry -----------------------------------------------------------------
    def _start_registry(self, domains: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The registry URL and the tokens to use (principal -> token)."""
        url = self.settings.registry_url.rstrip("/")
        if probe_registry(url):
            self.say(f"registry: using the one that answers at {url}")
            tokens: dict[str, str] = {}
            if self.settings.registry_principal and self.settings.registry_token is not None:
                token = self.settings.registry_token.get_secret_value()
                tokens[self.settings.registry_principal] = token
            return url, tokens
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS or parts.scheme != "http":
            raise RegistryUnavailableError(
                f"no registry answers at MESH_REGISTRY_URL={url}; start it, or point "
                f"MESH_REGISTRY_URL at http://127.0.0.1:<port> to let `mesh up` run one there",
                status=503,
            )
        tokens = registry_credentials(
            self.settings.data_dir / "registry" / "credentials.json", ["admin", *domains]
        )
        assert self._run.supervisor is not None
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        self._run.supervisor.add(
            ChildSpec(
                "registry",
                "registry",
                (
                    sys.executable,
                    "-m",
                    "mesh_stream.cli.main",
                    "registry",
                    "serve",
                    "--host",
                    host,
                    "--port",
                    str(port),
                ),
                env={
                    "MESH_REGISTRY_CREDENTIALS": ",".join(f"{p}:{t}" for p, t in tokens.items()),
                },
            )
        )
        self.say(f"registry: starting at {url} (log {self.log_dir / 'registry.log'})")
        self._wait_for_registry(url)
        return url, tokens

    def _wait_for_registry(self, url: str) -> None:
        supervisor = self._run.supervisor
        assert supervisor is not None
        deadline = time.monotonic() + REGISTRY_READY_TIMEOUT
        while time.monotonic() < deadline:
            supervisor.poll()
            if supervisor.running("registry") and probe_registry(url, timeout=1.0):
                self.say(f"registry: ready at {url}")
                return
            time.sleep(0.3)
        log = supervisor.log_file("registry")
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RegistryUnavailableError(
            f"the registry did not answer at {url} within {REGISTRY_READY_TIMEOUT:.0f}s. Last "
            f"lines of {log}:\n{tail}",
            status=503,
        )

    # -- stage 3: topics, schemas, descriptors ---------------------------------------------
    def _prepare_products(
        self,
        bootstrap: str,
        url: str,
        tokens: Mapping[str, str],
        products: Sequence[DataProduct],
        root: Path,
    ) -> None:
        from mesh_stream.processing.registration import ensure_topics

        created = ensure_topics(bootstrap, products)
        self.say(f"topics: {len(products)} product topics ready ({len(created)} created now)")
        principal, token = _writer_credential(tokens)
        if token is None:
            self.note(
                f"registration: skipped, no credential for the registry at {url}; set "
                f"MESH_REGISTRY_PRINCIPAL=admin and MESH_REGISTRY_TOKEN"
            )
            return
        failures: list[str] = []
        with RegistryClient(url, principal=principal, token=token) as client:
            for product in products:
                schema_path = root / product.schema_file
                try:
                    schema = schema_path.read_text(encoding="utf-8")
                except OSError as exc:
                    failures.append(f"{product.name}: schema: cannot read {schema_path}: {exc}")
                    continue
                try:
                    client.register_schema(product.value_subject, schema)
                    client.set_compatibility(product.compatibility.value, product.value_subject)
                    client.put_product(product)
                except RegistryUnavailableError:
                    raise
                except RegistryError as exc:
                    failures.append(f"{product.name}: {exc}")
        done = len(products) - len(failures)
        self.say(f"registry: {done} of {len(products)} schemas and descriptors registered")
        for failure in failures:
            self.note(f"registration failed: {failure}")

    def _decoder(self, url: str, tokens: Mapping[str, str]) -> Decoder:
        principal, token = _writer_credential(tokens)
        client = RegistryClient(url, principal=principal, token=token)
        self._run.closers.append(client.close)
        return registry_decoder(client)

    # -- stage 4: simulators and processors ------------------------------------------------
    def _start_runnables(self, root: Path, tokens: Mapping[str, str]) -> None:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        try:
            module = importlib.import_module("domains.runnables")
        except ModuleNotFoundError as exc:
            if exc.name not in ("domains", "domains.runnables"):
                raise
            self.note(
                "simulators and processors: skipped, domains/runnables.py does not exist yet "
                "(issue 5)"
            )
            return
        supervisor = self._run.supervisor
        assert supervisor is not None
        listed = module.runnables(self.options.rate, seed=self.options.seed)
        for kind in ("simulator", "processor"):
            for runnable in (r for r in listed if r.kind == kind):
                env = dict(runnable.env)
                domain = domain_of(runnable.argv, env)
                if domain is not None and domain in tokens and "MESH_REGISTRY_TOKEN" not in env:
                    env["MESH_REGISTRY_PRINCIPAL"] = domain
                    env["MESH_REGISTRY_TOKEN"] = tokens[domain]
                supervisor.add(
                    ChildSpec(runnable.name, runnable.kind, tuple(runnable.argv), env, cwd=root)
                )
        kinds = [r.kind for r in listed]
        self.say(
            f"started {kinds.count('simulator')} simulators at {self.options.rate:g} events/s "
            f"and {kinds.count('processor')} processors; logs in {self.log_dir}"
        )

    # -- watch -----------------------------------------------------------------------------
    def _watch(self) -> None:
        supervisor, monitor = self._run.supervisor, self._run.monitor
        assert supervisor is not None
        assert monitor is not None
        context = ViewContext(
            self._bootstrap,
            self._registry_url,
            self.log_dir,
            started_at=time.monotonic(),
            notes=tuple(self._run.notes),
        )
        errors = LogErrorCounter()
        deadline = (
            None if self.options.duration is None else time.monotonic() + (self.options.duration)
        )
        snapshot: MeshSnapshot | None = None
        next_sample = 0.0

        broker_watch: BrokerWatch | None = None

        def frame() -> Any:
            children = supervisor.status()
            cluster = self._run.cluster
            if cluster is not None:  # the broker `mesh up` started is one of its processes
                children.insert(0, broker_status(cluster, broker_watch))
            counts = {s.name: errors.count(s.log_file) for s in children}
            return render(context, snapshot, children, supervisor.events, log_errors=counts)

        if self._run.cluster is not None:
            broker_watch = BrokerWatch(
                self._run.cluster,
                supervisor,
                port=self.settings.broker_port,
                timeout=self.settings.broker_start_timeout,
                backoff=RESTART_BACKOFF,
            )
        view = LiveView() if self.options.view else None
        with view or contextlib.nullcontext():
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self.say(f"--duration {self.options.duration:g}s reached; stopping")
                    self._stop.set()
                    break
                supervisor.poll()
                if broker_watch is not None:
                    broker_watch.check()
                if now >= next_sample:
                    snapshot = monitor.sample()
                    next_sample = time.monotonic() + SAMPLE_INTERVAL
                    if view is not None:
                        view.update(frame())
                self._stop.wait(0.25)
        if view is None:
            click.echo(render_text(frame()), file=self.out)

    # -- stop ------------------------------------------------------------------------------
    def _stop_all(self) -> None:
        run = self._run
        if run.supervisor is not None:
            self.say("stopping: processors, simulators, registry ...")
            run.supervisor.stop()
        if run.monitor is not None:
            run.monitor.close()
        for close in run.closers:
            with contextlib.suppress(Exception):
                close()
        if run.cluster is not None:
            self.say("stopping: Kafka ...")
            pids = run.cluster.stop()
            self.say(f"stopped Kafka (pid {', '.join(map(str, pids))}); data kept for next time")
        self.say("mesh up: everything stopped")


def _writer_credential(tokens: Mapping[str, str]) -> tuple[str | None, str | None]:
    if "admin" in tokens:
        return "admin", tokens["admin"]
    for principal, token in tokens.items():
        return principal, token
    return None, None


@click.command()
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Events per second of the whole simulated story (all source domains together; "
    "each simulator publishes its domain's share).",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seed of the simulated story: the same seed gives the same events.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start over: erase the local broker's data (topics, registry state), the processors' "
    "state and the logs under MESH_DATA_DIR.",
)
@click.option(
    "--no-view",
    is_flag=True,
    help="No live view: print events as plain lines and a summary at the end (CI, logs).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop by itself after S seconds of running (tests, CI). Default: until Ctrl-C.",
)
@click.option(
    "--register-only",
    is_flag=True,
    help="Create every product topic and register every schema and descriptor, then exit "
    "(no simulators, processors or view; docker compose's setup step).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Repository root holding domains/ and schemas/.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State folder: broker data, processor state, logs/. [env: MESH_DATA_DIR; default "
    "~/.local/share/mesh-stream]",
)
@click.pass_obj
def up(
    settings: MeshSettings,
    rate: float,
    seed: int,
    fresh: bool,
    no_view: bool,
    duration: float | None,
    register_only: bool,
    root: Path,
    data_dir: Path | None,
) -> None:
    """Run the whole mesh in the foreground: Kafka, registry, simulators, processors.

    Starts the local broker (or uses MESH_BOOTSTRAP_SERVERS), the registry (or uses the one
    answering at MESH_REGISTRY_URL), registers every schema and descriptor from domains/,
    starts every simulator and processor as a supervised child (restarted with back-off
    when it dies; logs in MESH_DATA_DIR/logs), and shows a live view: per product its
    topic, rate, DLQ count and latest aggregate value, each processor's lag, each child's
    state. Ctrl-C (or SIGTERM) stops everything in order and leaves no process behind; a
    second `mesh up` reuses the data of the first.
    """
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    options = UpOptions(
        rate=rate,
        seed=seed,
        fresh=fresh,
        # Off a terminal (a pipe, CI, a file) a redrawn screen shows nothing useful: print lines.
        view=not no_view and Console().is_terminal,
        duration=duration,
        root=root,
        register_only=register_only,
    )
    status = MeshUp(settings, options).run()
    if status:
        raise click.exceptions.Exit(status)
