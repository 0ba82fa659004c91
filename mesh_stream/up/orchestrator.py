"""`mesh up`: the whole mesh in one command, in the foreground, until Ctrl-C.

In order: Kafka (the local broker from MESH_DATA_DIR/broker, started unless
MESH_BOOTSTRAP_SERVERS names a cluster or a local one already runs), the registry (a
supervised `mesh registry serve` unless MESH_REGISTRY_URL already answers), every product
topic, schema and descriptor of the project (the folder holding ``mesh.yaml``; idempotent,
sources before what is built from them), then every simulator and processor that the
project's ``runnables`` module lists, each a supervised child started in the project root
(its working directory, ``MESH_PROJECT_ROOT``), with its log in MESH_DATA_DIR/logs. Then
the live view (:mod:`mesh_stream.liveview`) until Ctrl-C, SIGTERM or ``--duration``; stopping goes
processors, simulators, registry, then the broker that `mesh up` itself started.

``--secure`` runs the same mesh on a local SASL (SCRAM-SHA-512) cluster of ``--brokers``
nodes with one user per domain: the ACL plan is applied as ``admin`` before anything else,
`mesh up`'s own clients (topics, live view) connect as ``admin``, the registry and the
product monitor as their own users (``registry``, ``monitor``, with only what the plan grants
them), and every simulator and processor as its own domain, so the broker enforces
ownership. Passwords reach the children only through their environment, never the output
or the logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

import click

from mesh_stream import registration
from mesh_stream.broker import LocalCluster, local_cluster
from mesh_stream.broker.security import ADMIN, MECHANISM, SASL, BrokerCredentials
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    ConfigurationError,
    RegistryError,
    RegistryUnavailableError,
    SchemaError,
)
from mesh_stream.governance.acl_plan import plan_acls
from mesh_stream.kafka.acls import apply_acls
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_id
from mesh_stream.liveview import (
    Decoder,
    HealthSource,
    LiveView,
    LogErrorCounter,
    MeshMonitor,
    MeshSnapshot,
    ViewContext,
    registry_decoder,
    render,
    render_text,
)
from mesh_stream.project import MONITOR_USER, REGISTRY_USER, SERVICE_USERS, MeshProject
from mesh_stream.registry.client import RegistryClient, without_userinfo
from mesh_stream.settings import MeshSettings
from mesh_stream.supervisor import (
    SHUTDOWN_ORDER,
    Backoff,
    ChildSpec,
    ChildState,
    ChildStatus,
    Supervisor,
    SupervisorEvent,
    describe_exit,
)
from mesh_stream.up.broker_watch import BrokerWatch, broker_status, probe_kafka
from mesh_stream.up.plan import domain_of, topological
from mesh_stream.up.registry_access import (
    monitor_credential,
    probe_registry,
    registry_credentials,
    registry_kafka_cluster,
    writer_credential,
)

RESTART_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=30.0, stable_after=60.0)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")
REGISTRY_READY_TIMEOUT = 90.0
SAMPLE_INTERVAL = 2.0
#: What `--fresh` erases below MESH_DATA_DIR (besides the broker's own folder).
FRESH_FOLDERS = ("processors", "logs")


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """Refuse a second `mesh up` on the same MESH_DATA_DIR (it would double every child)."""
    lock_path = data_dir / "mesh-up.lock"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        opened = lock_path.open("a+")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot use {data_dir} as the mesh's state folder ({exc.strerror}); pick a "
            f"writable one with --data-dir or MESH_DATA_DIR"
        ) from exc
    with opened as lock:
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


@dataclass
class UpOptions:
    """The command-line choices of one `mesh up` (settings come separately)."""

    rate: float
    seed: int
    fresh: bool
    view: bool
    duration: float | None
    project: MeshProject
    register_only: bool = False
    secure: bool = False
    brokers: int = 1


@dataclass
class _Run:
    """What this `mesh up` started, so it stops exactly that."""

    cluster: LocalCluster | None = None
    supervisor: Supervisor | None = None
    monitor: MeshMonitor | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Every schema and descriptor registered (False: skipped for want of a credential, or
    #: some refused); `--register-only` exits 1 unless it is True.
    registered_all: bool = False
    #: Children down or crash-looping when ``--duration`` ran out (that run exits 1).
    unhealthy_at_end: list[str] = field(default_factory=list)


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
        self._credentials: BrokerCredentials | None = None

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
    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """What SIGINT or SIGTERM does (the entry point installs it around :meth:`run`): the
        first stops everything in order (during start-up, by interrupting it); a second
        kills every child now."""
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
        """Start everything, show the view, stop everything. Returns the exit status: 0, or
        1 when ``--register-only`` did not register every schema and descriptor (a setup
        step that did not set up must not look like success to CI)."""
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
        if self.options.register_only and not self._run.registered_all:
            self._emit(
                "mesh up --register-only: not every schema and descriptor was registered "
                "(see above); exit status 1",
                "red",
            )
            return 1
        if self._run.unhealthy_at_end:
            self._emit(
                f"mesh up --duration: when the {self.options.duration:g}s ran out, "
                f"{'; '.join(self._run.unhealthy_at_end)}; exit status 1",
                "red",
            )
            return 1
        return 0

    def _start_all(self) -> None:
        project = self.options.project
        root = project.root
        products = topological(project.descriptors())
        if not products:
            raise ConfigurationError(
                f"no product descriptors under {project.descriptors_dir}/*/products/ (the "
                f"`products` folder of {project.config_file})"
            )
        listed = None if self.options.register_only else self._list_runnables()
        if self.options.fresh or self.options.secure:
            self._refuse_fresh_on_a_foreign_cluster()
        domains = sorted({p.domain for p in products} | set(project.domains))
        bootstrap = self._start_broker(domains)
        if self.options.secure:
            self._apply_acls(bootstrap, products)
        self._run.supervisor = Supervisor(
            [],
            self.log_dir,
            env=self._child_env(bootstrap),
            backoff=RESTART_BACKOFF,
            on_event=self._on_event,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        url, tokens = self._start_registry(domains, bootstrap)
        self._prepare_products(self._connection(bootstrap), url, tokens, products, root)
        self._bootstrap = bootstrap
        self._registry_url = url
        if self.options.register_only:
            self._stop.set()
            return
        self._start_runnables(tokens, listed)
        self._start_product_monitor(tokens)
        self._run.monitor = MeshMonitor(
            self._connection(bootstrap),
            products,
            decoder=self._decoder(url, tokens),
            health=self._health_source(url, tokens),
        )

    # -- stage 1: Kafka --------------------------------------------------------------------
    def _refuse_fresh_on_a_foreign_cluster(self) -> None:
        if self.settings.bootstrap_servers and self.options.secure:
            raise ConfigurationError(
                f"--secure runs its own local SASL cluster, but MESH_BOOTSTRAP_SERVERS="
                f"{self.settings.bootstrap_servers} names another one; unset "
                f"MESH_BOOTSTRAP_SERVERS, or drop --secure and set MESH_KAFKA_* for that cluster"
            )
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

    def _connection(self, bootstrap: str) -> KafkaConnection:
        """The Kafka connection of `mesh up`'s own clients: MESH_KAFKA_* for a cluster named by
        MESH_BOOTSTRAP_SERVERS, ``admin`` on the local secured cluster (--secure), PLAINTEXT
        for the local broker it runs."""
        if self._credentials is not None:
            return self._credentials.connection(bootstrap, ADMIN, client_id="mesh-up")
        if self.settings.bootstrap_servers:
            return KafkaConnection.from_settings(self.settings, default_client_id="mesh-up")
        return KafkaConnection.create(bootstrap, client_id="mesh-up")

    def _start_broker(self, domains: Sequence[str]) -> str:
        if self.settings.bootstrap_servers:
            servers = self.settings.bootstrap_servers
            self.say(f"Kafka: using the cluster at MESH_BOOTSTRAP_SERVERS={servers}")
            probe_kafka(self._connection(servers))
            return servers
        cluster = local_cluster(self.settings, progress=self.say)
        status = cluster.status()
        if status.running and status.bootstrap_servers and self.options.secure:
            self._credentials = self._reused_credentials(cluster, status.security, domains)
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
        if self.options.secure:
            state = cluster.start(
                brokers=self.options.brokers,
                port=self.settings.broker_port,
                timeout=self.settings.broker_start_timeout,
                fresh=self.options.fresh,
                security=SASL,
                users=list(domains),
            )
        else:
            state = cluster.start(
                brokers=self.options.brokers,
                port=self.settings.broker_port,
                timeout=self.settings.broker_start_timeout,
                fresh=self.options.fresh,
            )
        if self.options.secure:
            self._credentials = cluster.credentials()
            assert self._credentials is not None
            users = ", ".join(["admin", *domains, *SERVICE_USERS])
            self.say(
                f"Kafka: local SASL cluster of {self.options.brokers} nodes at "
                f"{state.bootstrap_servers} (users {users}; passwords in "
                f"{self._credentials.path}), data in {cluster.data_dir}"
            )
            return state.bootstrap_servers
        self.say(f"Kafka: local broker at {state.bootstrap_servers}, data in {cluster.data_dir}")
        return state.bootstrap_servers

    def _reused_credentials(
        self, cluster: LocalCluster, security: str, domains: Sequence[str]
    ) -> BrokerCredentials:
        """The users of a running local cluster --secure may reuse: it must be a SASL one
        that knows every domain."""
        credentials = cluster.credentials() if security == SASL else None
        if credentials is None:
            raise ConfigurationError(
                f"--secure needs a SASL cluster, but the one running from {cluster.data_dir} "
                f"is {security}; stop it with `mesh broker stop`, or give `mesh up --secure` "
                f"its own MESH_DATA_DIR"
            )
        missing = [d for d in [*domains, *SERVICE_USERS] if d not in credentials.users]
        if missing:
            raise ConfigurationError(
                f"the SASL cluster running from {cluster.data_dir} has no user for "
                f"{', '.join(missing)}; stop it with `mesh broker stop` and run `mesh up "
                f"--secure` again (it adds the users)"
            )
        return credentials

    def _apply_acls(self, bootstrap: str, products: Sequence[DataProduct]) -> None:
        """The ACL plan, applied as admin before any other client connects."""
        settings = self.settings
        plan = plan_acls(
            products,
            domains=self.options.project.domains,
            registry_topic=settings.registry_topic,
            registry_writer_id=settings.resolved_registry_writer_id,
            health_topic=settings.health_topic,
            alerts_topic=settings.alerts_topic,
        )
        for warning in plan.warnings:
            self.note(f"ACLs: {warning}")
        changes = apply_acls(self._connection(bootstrap), plan.acls, plan.manages)
        self.say(
            f"ACLs: {len(plan.acls)} planned, {len(changes.create)} created, "
            f"{len(changes.delete)} deleted (`mesh acl plan` lists them)"
        )

    def _kafka_env(self, user: str) -> dict[str, str]:
        """The MESH_KAFKA_* of a child that connects as ``user`` (--secure only)."""
        if self._credentials is None:
            return {}
        return {
            "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MESH_KAFKA_SASL_MECHANISM": MECHANISM.value,
            "MESH_KAFKA_SASL_USERNAME": user,
            "MESH_KAFKA_SASL_PASSWORD": self._credentials.password(user).get_secret_value(),
        }

    def _child_env(self, bootstrap: str) -> dict[str, str]:
        env = dict(os.environ)
        env["MESH_BOOTSTRAP_SERVERS"] = bootstrap
        env["MESH_REGISTRY_URL"] = self.settings.registry_url
        env["MESH_DATA_DIR"] = str(self.settings.data_dir)
        # Children (processors above all) find the project as any command does.
        env["MESH_PROJECT_ROOT"] = str(self.options.project.root)
        # The registry `mesh up` starts enforces this project's policies, overrides included.
        env.setdefault("MESH_GOVERNANCE_ROOT", str(self.options.project.root))
        return env

    # -- stage 2: registry -----------------------------------------------------------------
    def _refuse_a_registry_of_another_cluster(self, url: str, bootstrap: str) -> None:
        """A registry found running must keep its log on this mesh's Kafka: one of another
        mesh would take this mesh's products into its catalog and serve its own cluster's
        product health for them (every product `ok` with nothing published here)."""
        theirs = registry_kafka_cluster(url)
        if theirs is None:  # an older registry, or one that did not answer in time
            return
        ours = cluster_id(self._connection(bootstrap))
        if ours is not None and ours != theirs:
            raise ConfigurationError(
                f"the registry at MESH_REGISTRY_URL={url} keeps its data on another Kafka "
                f"cluster (id {theirs}) than this mesh's at {bootstrap} (id {ours}): it is "
                f"another mesh's registry. Stop it, or point MESH_REGISTRY_URL at a free port "
                f"(http://127.0.0.1:<port>) to let `mesh up` run one on this cluster"
            )

    def _start_registry(self, domains: Sequence[str], bootstrap: str) -> tuple[str, dict[str, str]]:
        """The registry URL and the tokens to use (principal -> token)."""
        # A principal:token@ in the URL is a credential (as the registry client takes it),
        # never part of the URL shown (children get MESH_REGISTRY_URL as it was set).
        url, in_url = without_userinfo(self.settings.registry_url.rstrip("/"))
        if probe_registry(url):
            self._refuse_a_registry_of_another_cluster(url, bootstrap)
            self.say(f"registry: using the one that answers at {url}")
            tokens: dict[str, str] = {}
            if self.settings.registry_principal and self.settings.registry_token is not None:
                token = self.settings.registry_token.get_secret_value()
                tokens[self.settings.registry_principal] = token
            elif in_url is not None and in_url[1]:  # a user without a token is none
                tokens[in_url[0]] = in_url[1]
            return url, tokens
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS or parts.scheme != "http":
            raise RegistryUnavailableError(
                f"no registry answers at MESH_REGISTRY_URL={url}; start it, or point "
                f"MESH_REGISTRY_URL at http://127.0.0.1:<port> to let `mesh up` run one there",
                status=503,
            )
        tokens = registry_credentials(
            self.settings.data_dir / "registry" / "credentials.json",
            ["admin", *domains, MONITOR_USER],
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
                    **self._kafka_env(REGISTRY_USER),
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
        log = supervisor.log_file("registry")
        while time.monotonic() < deadline:
            status = supervisor.give_up_if_exited("registry")
            if status is not None:
                # Its settings, its port, its extras: what a restart would meet again.
                raise ConfigurationError(
                    f"the registry `mesh up` started at {url} {describe_exit(status)} before it "
                    f"answered: {_last_line(log)} (log: {log})"
                )
            if supervisor.running("registry") and probe_registry(url, 1.0, starting=True):
                self.say(f"registry: ready at {url}; portal: {url}/ui")
                return
            time.sleep(0.3)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RegistryUnavailableError(
            f"the registry did not answer at {url} within {REGISTRY_READY_TIMEOUT:.0f}s. Last "
            f"lines of {log}:\n{tail}",
            status=503,
        )

    # -- stage 3: topics, schemas, descriptors ---------------------------------------------
    def _prepare_products(
        self,
        kafka: KafkaConnection,
        url: str,
        tokens: Mapping[str, str],
        products: Sequence[DataProduct],
        root: Path,
    ) -> None:
        """Create every product topic, register every schema and descriptor; notes what
        was skipped or refused and records in ``registered_all`` whether all went in."""
        created = registration.ensure_topics(kafka, products)
        # each product's dead-letter topic too: the owner creates it, its readers write there
        created += registration.ensure_dlq_topics(kafka, products, every=True)
        self.say(
            f"topics: {len(products)} product topics and their dead-letter topics ready "
            f"({len(created)} created now)"
        )
        principal, token = writer_credential(tokens)
        if token is None:
            self.note(
                f"registration: skipped, no credential for the registry at {url}; set "
                f"MESH_REGISTRY_PRINCIPAL=admin and MESH_REGISTRY_TOKEN"
            )
            return
        failures: list[str] = []
        with RegistryClient(url, principal=principal, token=token) as client:
            for product in products:  # sources first: every input is registered before
                try:
                    registration.register_product(
                        client, product, root, wait_for_inputs=0, set_level=True
                    )
                except RegistryUnavailableError:
                    raise
                except (RegistryError, ConfigurationError, SchemaError) as exc:
                    said = str(exc)
                    failures.append(
                        said if said.startswith(product.name) else f"{product.name}: {said}"
                    )
        done = len(products) - len(failures)
        self.say(f"registry: {done} of {len(products)} schemas and descriptors registered")
        for failure in failures:
            self.note(f"registration failed: {failure}")
        self._run.registered_all = not failures

    def _decoder(self, url: str, tokens: Mapping[str, str]) -> Decoder:
        principal, token = writer_credential(tokens)
        client = RegistryClient(url, principal=principal, token=token)
        self._run.closers.append(client.close)
        return registry_decoder(client)

    def _health_source(self, url: str, tokens: Mapping[str, str]) -> HealthSource:
        """Product health for the live view: a short timeout, no retries (never stalls it)."""
        principal, token = writer_credential(tokens)
        client = RegistryClient(url, principal=principal, token=token, timeout=2.0, retry_seconds=0)
        self._run.closers.append(client.close)
        return client.all_product_health

    # -- stage 4: simulators and processors ------------------------------------------------
    def _list_runnables(self) -> list[Any] | None:
        """What the project's ``runnables`` module lists (None when mesh.yaml names none),
        asked before anything starts: whatever that module raises is its failure, said as one
        line naming it, never ours (sys.exit in it too; Ctrl-C still interrupts)."""
        project = self.options.project
        name = project.runnables
        if name is None:
            return None
        # The project's module, imported from the project root like the children run it.
        with _importable_from(project.root):
            return self._import_runnables(project, name)

    def _import_runnables(self, project: MeshProject, name: str) -> list[Any]:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            parts = name.split(".")
            if exc.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
                raise self._runnables_failed(exc, "while imported") from exc
            raise ConfigurationError(
                f"{project.config_file}: runnables: module {name!r} not found "
                f"under {project.root}; fix `runnables` or add {name.replace('.', '/')}.py"
            ) from exc
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise self._runnables_failed(exc, "while imported") from exc
        if not callable(getattr(module, "runnables", None)):
            raise ConfigurationError(
                f"{project.config_file}: runnables: module {name!r} has no "
                f"function runnables(rate, seed=...)"
            )
        try:
            listed = list(module.runnables(self.options.rate, seed=self.options.seed))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise self._runnables_failed(exc, "calling runnables(rate, seed=...)") from exc
        for item in listed:
            missing = [a for a in ("name", "kind", "argv", "env") if not hasattr(item, a)]
            if missing:
                raise ConfigurationError(
                    f"the project's runnables module {name!r} ({project.config_file} "
                    f"`runnables`) listed {item!r}, which has no {', '.join(missing)}; list "
                    f"objects with name, kind, argv and env"
                )
        return listed

    def _runnables_failed(self, exc: BaseException, when: str) -> ConfigurationError:
        said = (str(exc).strip().splitlines() or [""])[0]
        raised = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
        return ConfigurationError(
            f"the project's runnables module {self.options.project.runnables!r} "
            f"({self.options.project.config_file} `runnables`) raised {raised} ({when}); fix it"
        )

    def _start_runnables(self, tokens: Mapping[str, str], listed: list[Any] | None) -> None:
        root = self.options.project.root
        name = self.options.project.runnables
        if listed is None:
            self.note(
                f"simulators and processors: none, {self.options.project.config_file} names "
                f"no `runnables` module"
            )
            return
        supervisor = self._run.supervisor
        assert supervisor is not None
        for kind in ("simulator", "processor"):
            for runnable in (r for r in listed if r.kind == kind):
                env = dict(runnable.env)
                domain = domain_of(runnable.argv, env)
                if domain is not None and domain in tokens and "MESH_REGISTRY_TOKEN" not in env:
                    env["MESH_REGISTRY_PRINCIPAL"] = domain
                    env["MESH_REGISTRY_TOKEN"] = tokens[domain]
                if self._credentials is not None:
                    if domain is None:
                        raise ConfigurationError(
                            f"{runnable.name}: --secure cannot tell its domain (no -m "
                            f"domains.<domain> and no MESH_REGISTRY_PRINCIPAL in "
                            f"{name}), so it has no Kafka user"
                        )
                    env |= self._kafka_env(domain)
                if kind == "processor":  # a restart rejoins its group at once
                    instance = _instance_id(runnable.name, self.settings.data_dir)
                    env.setdefault("MESH_PROCESSOR_INSTANCE_ID", instance)
                supervisor.add(
                    ChildSpec(runnable.name, runnable.kind, tuple(runnable.argv), env, cwd=root)
                )
        kinds = [r.kind for r in listed]
        self.say(
            f"started {kinds.count('simulator')} simulators at {self.options.rate:g} events/s "
            f"and {kinds.count('processor')} processors; logs in {self.log_dir}"
        )

    def _start_product_monitor(self, tokens: Mapping[str, str]) -> None:
        """One supervised `mesh monitor` (SLOs measured every MESH_MONITOR_INTERVAL_SECONDS),
        reading the registry and, on a --secure cluster, Kafka as its own (read-only) user."""
        assert self._run.supervisor is not None
        env = {
            "MESH_MONITOR_INTERVAL_SECONDS": f"{self.settings.monitor_interval_seconds:g}",
            **self._kafka_env(MONITOR_USER),
        }
        principal, token = monitor_credential(tokens)
        if principal is not None and token is not None:
            env |= {"MESH_REGISTRY_PRINCIPAL": principal, "MESH_REGISTRY_TOKEN": token}
        argv = (sys.executable, "-m", "mesh_stream.cli.main", "monitor")
        self._run.supervisor.add(ChildSpec("monitor", "monitor", argv, env))
        self.say(
            f"monitor: measuring every product's SLOs every "
            f"{self.settings.monitor_interval_seconds:g}s (log {self.log_dir / 'monitor.log'})"
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

        def processes() -> list[ChildStatus]:
            children = supervisor.status()
            cluster = self._run.cluster
            if cluster is not None:  # the broker `mesh up` started is one of its processes
                children.insert(0, broker_status(cluster, broker_watch))
            return children

        def frame() -> Any:
            children = processes()
            counts = {s.name: errors.count(s.log_file) for s in children}
            crashes = {
                s.name: line for s in children if (line := errors.crash(s.log_file)) is not None
            }
            return render(
                context,
                snapshot,
                children,
                supervisor.events,
                log_errors=counts,
                crashes=crashes,
                size=view.size if view is not None else None,
            )

        if self._run.cluster is not None and not self.options.secure:
            # A secured cluster of several nodes outlives one lost node; it is not restarted.
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
                    # the broker counts when `mesh up` restarts it (a secured cluster of
                    # several nodes outlives a lost node, and is not watched)
                    self._run.unhealthy_at_end = _unhealthy(
                        s for s in processes() if s.kind != "broker" or broker_watch is not None
                    )
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
        # refused before anything started: nothing to say stopped (h51)
        started_any = not (run.supervisor is None and run.monitor is None and run.cluster is None)
        if run.supervisor is not None:
            started = _kinds_started(run.supervisor)
            if started:  # name only what runs: `--register-only` on a running registry has none
                self.say(f"stopping: {', '.join(started)} ...")
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
        if started_any:
            self.say("mesh up: everything stopped")


#: How long a child that exited twice in a row soon after starting must have run since, as
#: ``--duration`` runs out, to count as up again rather than crash-looping.
SETTLED_S = 10.0


def _unhealthy(statuses: Iterable[ChildStatus], settled_s: float = SETTLED_S) -> list[str]:
    """Each child (or the local broker) that is down, waiting for a restart, or
    crash-looping (two exits in a row, each soon after its start, and its current run
    shorter than ``settled_s``), with its last exit and the line it wrote before it: a run
    with ``--duration`` (a CI check) that ends with one must not look like success. A child
    that crashed and has run since is not counted; its restarts are in the log."""
    found = []
    for status in statuses:
        down = status.state is not ChildState.RUNNING
        settled = status.up_for is not None and status.up_for >= settled_s
        if not down and (status.failures < 2 or settled):
            continue
        state = "was down" if down else "was crash-looping"
        exit_text = (
            f", last {describe_exit(status.last_exit)}" if status.last_exit is not None else ""
        )
        said = f": {status.last_said}" if status.last_said else ""
        found.append(
            f"{status.name} {state} (restarted {status.restarts} time(s){exit_text}{said}; "
            f"log: {status.log_file})"
        )
    return found


def _kinds_started(supervisor: Supervisor) -> list[str]:
    """The kinds of child the supervisor started, in shutdown order, as the stop line names
    them ("processors, simulators, registry")."""
    started = {s.kind for s in supervisor.status() if s.pid is not None or s.last_exit is not None}
    order = [k for k in SHUTDOWN_ORDER if k in started] + sorted(started - set(SHUTDOWN_ORDER))
    return [kind if kind in {"registry", "monitor"} else f"{kind}s" for kind in order]


def _last_line(log: Path) -> str:
    """The last thing a child said in its log (its error, when it died), past `mesh up`'s
    own ``=== ... start #n`` header."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    said = [line.strip() for line in lines if line.strip() and not line.startswith("=== ")]
    return said[-1] if said else "it wrote nothing"


def _instance_id(name: str, data_dir: Path) -> str:
    """A Kafka group instance id: the runnable's name (other characters become '-') and a
    digest of the mesh's data directory.

    A restart of the same mesh keeps the id, so it rejoins at once; two meshes on one broker
    (two data directories) get different ids, so their workers share the group's partitions
    instead of fencing each other out of it.
    """
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:190] or "processor"
    return f"{readable}-{digest}"


@contextlib.contextmanager
def _importable_from(root: Path) -> Iterator[None]:
    """The project's modules importable for the block; ``sys.path`` is as it was after."""
    entry = str(root)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)
