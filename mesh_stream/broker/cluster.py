"""A real Apache Kafka cluster (KRaft, combined broker + controller nodes) on this machine.

``LocalCluster`` formats each node's log directory, starts one JVM per node in the
background, and waits until the cluster answers a metadata request that lists every
node. What it started is written to ``<data_dir>/cluster.json`` so that another process
(``mesh broker status``/``stop``, a later ``start``) knows about it.

Security modes (``security=``): ``plaintext`` (the default, an open PLAINTEXT listener),
``sasl`` (a SASL_PLAINTEXT client listener, SCRAM-SHA-512) and ``sasl_ssl`` (SASL_SSL with
a CA the launcher makes). The secured modes run KRaft's ``StandardAuthorizer`` with
``admin`` as the only super user and no access without an ACL. Brokers talk to each other
through the client listener as ``admin`` (SCRAM); the controller listener stays on
loopback without TLS but needs SASL PLAIN as ``admin``, so no listener lets an
unauthenticated client in. SCRAM users are written into the metadata log when the
storage is formatted (``kafka-storage format --add-scram``); users added to an existing
cluster are created through the admin API. See :mod:`mesh_stream.broker.security`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError

from mesh_stream.broker.distribution import (
    KafkaDistribution,
    Progress,
    _silent,
    require_tool,
    resource_path,
)
from mesh_stream.broker.security import (
    ADMIN,
    CREDENTIALS_FILE,
    MECHANISM,
    PLAINTEXT,
    SASL_SSL,
    TLS_DIR,
    BrokerCredentials,
    check_mode,
    ensure_credentials,
    ensure_tls,
    load_credentials,
    write_private,
)
from mesh_stream.errors import (
    BrokerAlreadyRunningError,
    BrokerError,
    BrokerStartTimeoutError,
    ConfigurationError,
    PortInUseError,
)
from mesh_stream.files import damage_said
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error
from mesh_stream.kafka.topics import min_insync_replicas
from mesh_stream.project import SERVICE_USERS, domain_name_problem
from mesh_stream.settings import HEAP_SIZE, default_data_dir, user_scratch_dir

STATE_FILE = "cluster.json"
HOST = "127.0.0.1"
#: Most nodes of a local cluster: each is a JVM of its own (~0.5 GB), and a quorum of 3 or 5
#: is what a production-like test needs.
MAX_BROKERS = 9
#: Partitions of Kafka's group-offset and transaction-state topics (Kafka's default is 50
#: each): a broker creates and loads them on the first consumer group or transaction, which
#: held a freshly started local broker's first group or transaction up for about 2 s.
INTERNAL_TOPIC_PARTITIONS = 6
#: The highest TCP port.
MAX_PORT = 65535


def port_range_problem(port: int, brokers: int, *, port_setting: str = "--port") -> str | None:
    """Why node 1 on ``port`` and the others on the next ports cannot be, or None.

    Node N listens on ``port + N - 1``, so the range must end at :data:`MAX_PORT` at the
    latest (port 0 picks free ports). ``port_setting`` is how the caller was given the port.
    """
    last = port + brokers - 1
    if port == 0 or last <= MAX_PORT:
        return None
    return (
        f"{port_setting} {port} with --brokers {brokers} needs ports up to {last} (node N "
        f"takes PORT+N-1), above the highest port {MAX_PORT}; pick a port of at most "
        f"{MAX_PORT - brokers + 1}, or 0 for free ports"
    )


#: What Kafka's storage format writes into a node's data folder before the node ever ran.
FORMAT_ONLY_FILES = frozenset({"meta.properties", "bootstrap.checkpoint"})


@dataclass
class NodeState:
    node_id: int
    port: int
    controller_port: int
    pid: int | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass
class ClusterState:
    cluster_id: str
    kafka_version: str
    nodes: list[NodeState] = field(default_factory=list)
    security: str = PLAINTEXT

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    address: str
    pid: int | None
    running: bool
    log_file: Path


@dataclass(frozen=True)
class ClusterStatus:
    """What ``mesh broker status`` reports."""

    running: bool
    bootstrap_servers: str | None
    nodes: tuple[NodeStatus, ...]
    data_dir: Path
    security: str = PLAINTEXT
    credentials_file: Path | None = None  # passwords of the SCRAM users (never printed)

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes if node.pid is not None and node.running]


#: Kafka's default log cleaner buffer (128 MiB), taken from the heap at start-up.
CLEANER_BUFFER_MAX = 128 * 1024 * 1024


def cleaner_buffer_bytes(heap: str) -> int | None:
    """The log cleaner's dedupe buffer for a node of ``heap`` (-Xmx, e.g. ``256m``): an
    eighth of it, at most Kafka's 128 MiB default. At 256 MiB of heap that default made a
    node fail at start-up now and then (OutOfMemoryError in the cleaner's SkimpyOffsetMap).
    None when the heap cannot be read (the default stays)."""
    match = HEAP_SIZE.match(heap.strip())
    if match is None:
        return None
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return min(CLEANER_BUFFER_MAX, int(match.group(1)) * scale // 8)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, ids starting with ``-`` are drawn again, since
    command-line parsers would read them as options.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


#: Where :func:`free_port` picks from: below Linux's ephemeral range (32768-60999), so no
#: outgoing connection's local port takes the one picked before its listener binds it (a
#: registry started on a picked port lost it that way).
PICKED_PORTS = range(20_000, 32_768)
_picker = random.Random()  # its own generator: the process's random state is left alone
#: How long a picked port stays promised to its picker against other processes' picks.
PORT_PROMISE_S = 600.0


def _promise(port: int) -> bool:
    """Promise ``port`` to this process for :data:`PORT_PROMISE_S` (a marker file in the
    user's default cache folder, the same for every process whatever its settings), False when
    another process's promise of it still holds: two processes starting brokers at once
    could otherwise both pick a port nothing listens on yet, and one Kafka node then found
    another cluster's controller on it (verify33)."""
    folder = user_scratch_dir() / "ports"
    marker = folder / str(port)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            return True  # not this user's folder: the bind check alone decides
        with contextlib.suppress(FileNotFoundError):
            if time.time() - marker.stat().st_mtime < PORT_PROMISE_S:
                return False
            marker.unlink()
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False  # promised by another process just now
    except OSError:
        return True  # no folder to write: the bind check alone decides
    return True


def free_port() -> int:
    """A port nothing listens on now and no other process picked in the last
    :data:`PORT_PROMISE_S`, outside the ephemeral range when one is free there (else one
    the kernel gives)."""
    for _ in range(64):
        port = _picker.randrange(PICKED_PORTS.start, PICKED_PORTS.stop)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        if _promise(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (reaping it first if it is our own exited child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs: trust the signal check
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    # An empty command line is a process caught mid-exec; a different one is a reused pid.
    return not cmdline or b"kafka.Kafka" in cmdline


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


def properties_text(text: str) -> str:
    """``text`` as Java reads a ``.properties`` file, ISO-8859-1: every character past ASCII
    as its ``\\uXXXX`` escape (a data dir holding ``ü``, written as UTF-8, was read as
    ``Ã¼``: Kafka kept its data in another folder)."""
    if text.isascii():
        return text
    return "".join(char if char.isascii() else _unicode_escape(char) for char in text)


def _unicode_escape(char: str) -> str:
    """``ü`` as ``\\u00fc``; a character past the BMP as its two UTF-16 units, as Java has it."""
    units = char.encode("utf-16-be", "surrogatepass").hex()
    return "".join(f"\\u{units[i : i + 4]}" for i in range(0, len(units), 4))


def java_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Kafka's JVMs run in: this one, in a UTF-8 locale. Java names files
    in the locale's encoding, so under a POSIX locale a data dir holding ``ü`` became
    another, garbled folder outside it (which ``--fresh`` then missed)."""
    env = dict(os.environ if environ is None else environ)
    chosen = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or ""
    if chosen.lower().replace("utf8", "utf-8").partition(".")[2].split("@")[0] != "utf-8":
        env["LC_ALL"] = "C.UTF-8"
    return env


class LocalCluster:
    """Start, stop and inspect a Kafka cluster whose state lives in ``data_dir``."""

    def __init__(
        self,
        distribution: KafkaDistribution,
        data_dir: Path,
        *,
        heap: str = "512m",
        jvm_options: tuple[str, ...] = (),
        progress: Progress = _silent,
    ) -> None:
        self.distribution = distribution
        #: Absolute: Kafka runs in each node's folder, and reads its files by these paths.
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.heap = heap
        self.jvm_options = jvm_options
        self.progress = progress

    # -- state -------------------------------------------------------------------------
    @property
    def stop_command(self) -> str:
        """The command that stops this cluster: `mesh broker stop` finds a cluster by its
        data folder (``<data dir>/broker``), so it is named unless it is the default one."""
        if self.data_dir.name != "broker" or self.data_dir.parent == default_data_dir():
            return "mesh broker stop"
        return f"mesh broker stop --data-dir {shlex.quote(str(self.data_dir.parent))}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.log"

    def _load_state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        try:
            raw = json.loads(self.state_file.read_text())
            return ClusterState(
                cluster_id=raw["cluster_id"],
                kafka_version=raw["kafka_version"],
                nodes=[NodeState(**node) for node in raw["nodes"]],
                security=check_mode(raw.get("security", PLAINTEXT)),
            )
        except (ValueError, KeyError, TypeError, AttributeError, ConfigurationError) as exc:
            raise ConfigurationError(
                f"{self.state_file} is damaged ({damage_said(exc)}); stop what runs from it with "
                f"`{self.stop_command}`, then start with --fresh to begin a new cluster"
            ) from exc

    def _save_state(self, state: ClusterState) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self.state_file)

    # -- queries -----------------------------------------------------------------------
    def status(self) -> ClusterStatus:
        state = self._load_state()
        if state is None:
            return ClusterStatus(False, None, (), self.data_dir)
        nodes = tuple(
            NodeStatus(
                node_id=node.node_id,
                address=node.address,
                pid=node.pid,
                running=node.pid is not None and process_alive(node.pid),
                log_file=self.log_file(node.node_id),
            )
            for node in state.nodes
        )
        running = bool(nodes) and all(node.running for node in nodes)
        credentials = load_credentials(self.data_dir) if state.security != PLAINTEXT else None
        return ClusterStatus(
            running,
            state.bootstrap_servers,
            nodes,
            self.data_dir,
            security=state.security,
            credentials_file=credentials.path if credentials else None,
        )

    def _new_users(self, users: Sequence[str], security: str) -> list[str]:
        """The ``users`` a secured cluster from this data folder has no password for. The
        project's domains (the default ``--domains``) are its users already: the restart of
        a stopped node from the project's folder was refused as if they were new (h59)."""
        if security == PLAINTEXT:
            return []
        known = load_credentials(self.data_dir)
        return [user for user in users if user and (known is None or user not in known.users)]

    def credentials(self) -> BrokerCredentials | None:
        """The SCRAM users and CA of a secured cluster; None for a plaintext one."""
        state = self._load_state()
        if state is None or state.security == PLAINTEXT:
            return None
        return load_credentials(self.data_dir)

    def connection(self, user: str = ADMIN) -> KafkaConnection:
        """A client connection to this cluster as ``user`` (the admin by default)."""
        state = self._load_state()
        if state is None:
            raise ConfigurationError(
                f"no broker was ever started from {self.data_dir}; run `mesh broker start`"
            )
        credentials = self.credentials()
        if credentials is None:
            return KafkaConnection.create(state.bootstrap_servers)
        return credentials.connection(state.bootstrap_servers, user)

    # -- start -------------------------------------------------------------------------
    def start(
        self,
        *,
        brokers: int = 1,
        port: int = 9092,
        timeout: float = 90.0,
        fresh: bool = False,
        security: str = PLAINTEXT,
        users: Sequence[str] = (),
        port_chosen: bool = False,
    ) -> ClusterState:
        """Start a cluster of ``brokers`` nodes; return its state once it answers.

        ``port`` is the first node's client port (the others take the next ones);
        0 picks free ports. Existing data is reused unless ``fresh``. ``security`` is
        ``plaintext``, ``sasl`` or ``sasl_ssl``; ``users`` are SCRAM users made besides
        ``admin`` (one per domain) in the secured modes, and so are the platform's services'
        users (``registry``, ``monitor``: see :mod:`mesh_stream.governance.acl_plan`).
        Existing data keeps its ports; ``port_chosen`` (the user named ``port``) refuses
        another port rather than quietly not using it.
        """
        if not 1 <= brokers <= MAX_BROKERS:
            raise ConfigurationError(f"--brokers must be 1 to {MAX_BROKERS}, got {brokers}")
        problem = port_range_problem(port, brokers, port_setting="port (MESH_BROKER_PORT)")
        if problem is not None:
            raise ConfigurationError(problem)
        users = [user.strip() for user in users]
        for user in users:  # before anything is erased (--fresh) or started
            problem = domain_name_problem(user) if user else None
            if problem is not None:  # reserved or malformed: the names a project could hold
                raise ConfigurationError(f"--domains: {problem}")
        check_mode(security)
        try:
            current: ClusterStatus | None = self.status()
        except ConfigurationError:  # cluster.json damaged: --fresh starts over (strays below)
            if not fresh:
                raise
            current = None
        if current is not None and any(node.running for node in current.nodes):
            pids = ", ".join(str(node.pid) for node in current.nodes if node.running)
            down = [node.node_id for node in current.nodes if not node.running]
            previous = self._load_state()
            if (
                down
                and not fresh
                and previous is not None
                and len(previous.nodes) == brokers
                and previous.security == security
                and not (port_chosen and port and previous.nodes[0].port != port)
                and not self._new_users(users, security)  # new users need a whole start
            ):  # a node killed: started again beside the others, as a broker restart
                return self._restart_nodes(previous, down, timeout)
            if down:
                raise BrokerAlreadyRunningError(
                    f"the cluster from {self.data_dir} runs partly: node "
                    f"{', '.join(map(str, down))} stopped, the others run (pid {pids}); start "
                    f"it as it was (--brokers {len(current.nodes)}"
                    + (
                        f", --security {previous.security}, port {previous.nodes[0].port}"
                        if previous is not None
                        else ""
                    )
                    + f", no --fresh, no new --domains) to bring node "
                    f"{', '.join(map(str, down))} back, or stop it with `{self.stop_command}`"
                )
            raise BrokerAlreadyRunningError(
                f"a broker already runs from {self.data_dir} at {current.bootstrap_servers} "
                f"(pid {pids}); use it, or stop it first with `{self.stop_command}`"
            )
        strays = self.stray_pids()
        if strays:
            raise BrokerAlreadyRunningError(
                f"Kafka nodes from {self.data_dir} still run (pid "
                f"{', '.join(map(str, strays))}) though {self.state_file} does not record them; "
                f"stop them with `{self.stop_command}`"
            )
        java = require_tool("java", "run Apache Kafka")
        self.distribution.fetch(self.progress)

        previous = None if fresh else self._load_state()
        if previous is not None and len(previous.nodes) != brokers:
            raise ConfigurationError(
                f"{self.data_dir} holds a {len(previous.nodes)}-node cluster, not {brokers}; "
                f"start it with --brokers {len(previous.nodes)}, use --fresh to erase it, "
                f"or pick another MESH_DATA_DIR"
            )
        if port_chosen and port and previous is not None and previous.nodes[0].port != port:
            raise ConfigurationError(
                f"{self.data_dir} holds a cluster on port {previous.nodes[0].port}, not {port}; "
                f"start it with --port {previous.nodes[0].port} (or without --port and "
                f"MESH_BROKER_PORT), use --fresh to erase it, or pick another MESH_DATA_DIR"
            )
        if previous is not None and previous.security != security:
            raise ConfigurationError(
                f"{self.data_dir} holds a cluster started with --security {previous.security}, "
                f"not {security}; start it with --security {previous.security}, use --fresh to "
                f"erase it, or pick another MESH_DATA_DIR"
            )
        if (
            previous is not None
            and security != PLAINTEXT
            and not (self.data_dir / CREDENTIALS_FILE).exists()
        ):
            raise ConfigurationError(
                f"{self.data_dir / CREDENTIALS_FILE} is missing, so the passwords of this "
                f"cluster's users are lost; start with --fresh to make a new cluster"
            )
        state = self._plan(previous, brokers, port)
        state.security = security
        self._check_ports(state)
        credentials: BrokerCredentials | None = None
        added: list[str] = []
        with self._data_dir_errors():
            if fresh:
                self._erase_data_dir()
            if security != PLAINTEXT:
                wanted = [*users, *SERVICE_USERS]
                credentials, added = ensure_credentials(self.data_dir, security, wanted)
                if security == SASL_SSL:
                    ensure_tls(self.data_dir / TLS_DIR)
            for node in state.nodes:
                self._configure(
                    state, node, format_storage=previous is None, java=java, credentials=credentials
                )

        self.progress(
            f"Starting Kafka {state.kafka_version} (KRaft, {brokers} node"
            f"{'s' if brokers > 1 else ''}) at {state.bootstrap_servers} ..."
        )
        for node in state.nodes:
            node.pid = self._launch(node, java)
        self._save_state(state)
        connection = (
            credentials.connection(state.bootstrap_servers)
            if credentials
            else KafkaConnection.create(state.bootstrap_servers)
        )
        try:
            self._wait_ready(state, timeout, connection)
            if credentials is not None and previous is not None and added:
                self._add_users(connection, credentials, added)
        except BaseException:
            self.stop()
            raise
        return state

    def _restart_nodes(self, state: ClusterState, down: list[int], timeout: float) -> ClusterState:
        """Start nodes ``down`` of a cluster whose other nodes run (one was killed, say): each
        with its own configuration and data, as an operator restarts a broker; return once
        every node answers again."""
        java = require_tool("java", "run Apache Kafka")
        self.distribution.fetch(self.progress)
        restarted = [node for node in state.nodes if node.node_id in down]
        self.progress(
            f"Restarting node {', '.join(str(n.node_id) for n in restarted)} of the cluster at "
            f"{state.bootstrap_servers} (the other nodes run) ..."
        )
        for node in restarted:
            node.pid = self._launch(node, java)
        self._save_state(state)
        self._wait_ready(state, timeout, self.connection())
        return state

    def _add_users(
        self, connection: KafkaConnection, credentials: BrokerCredentials, names: list[str]
    ) -> None:
        """Create SCRAM users on a running cluster (users added after it was formatted)."""
        from confluent_kafka.admin._scram import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )

        admin = make_admin(connection, {"log_level": 0})
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                name,
                ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                credentials.password(name).get_secret_value().encode(),
            )
            for name in names
        ]
        for name, future in admin.alter_user_scram_credentials(upserts).items():
            try:
                future.result(30)
            except Exception as exc:
                raise BrokerError(f"creating the SCRAM user {name!r} failed: {exc}") from exc
        self.progress(f"added SCRAM users: {', '.join(names)}")

    def _erase_data_dir(self) -> None:
        """``--fresh``: remove the data folder whole and say what it held: every entry at its
        top (the state file, credentials, TLS files, one folder per node), and how many files
        and folders in all (each node's data, log and configuration below them)."""
        if not self.data_dir.exists():
            self.progress(f"--fresh: {self.data_dir} does not exist yet; nothing to erase")
            return
        files = folders = 0
        for _place, inner, names in os.walk(self.data_dir):
            folders += len(inner)
            files += len(names)
        top = sorted(
            entry.name + ("/" if entry.is_dir() else "") for entry in self.data_dir.iterdir()
        )
        shutil.rmtree(self.data_dir)
        self.progress(
            f"--fresh: erased {self.data_dir} ({_count(files, 'file')} and "
            f"{_count(folders, 'folder')} in it): {', '.join(top) or 'it was empty'}"
        )

    @contextlib.contextmanager
    def _data_dir_errors(self) -> Iterator[None]:
        """Turn a data folder the launcher cannot write into an error naming the setting."""
        try:
            yield
        except OSError as exc:
            raise ConfigurationError(
                f"cannot prepare the broker's data folder {self.data_dir} ({exc.strerror}); "
                f"pick a writable one with --data-dir or MESH_DATA_DIR"
            ) from exc

    def _plan(self, previous: ClusterState | None, brokers: int, port: int) -> ClusterState:
        if previous is not None:
            for node in previous.nodes:
                node.pid = None
            return previous
        used: set[int] = set()

        def pick(wanted: int) -> int:
            chosen = wanted if wanted else free_port()
            while chosen in used:
                chosen = free_port()
            used.add(chosen)
            return chosen

        nodes = []
        for index in range(brokers):
            client = pick(port + index if port else 0)
            nodes.append(NodeState(node_id=index + 1, port=client, controller_port=pick(0)))
        return ClusterState(
            cluster_id=new_cluster_id(), kafka_version=self.distribution.version, nodes=nodes
        )

    def _check_ports(self, state: ClusterState) -> None:
        for node in state.nodes:
            for kind, number in (("client", node.port), ("controller", node.controller_port)):
                if not port_is_free(number):
                    raise PortInUseError(
                        f"port {number} ({kind} listener of node {node.node_id}) is taken by "
                        f"another process; free it, or pick another port with --port / "
                        f"MESH_BROKER_PORT (0 picks free ports; with existing data use --fresh)"
                    )

    def _properties(
        self, state: ClusterState, node: NodeState, credentials: BrokerCredentials | None = None
    ) -> str:
        count = len(state.nodes)
        min_isr = min_insync_replicas(count)  # the topics' own rule, at the default RF
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in state.nodes)
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.node_dir(node.node_id) / "data",
            "num.partitions": 1,
            "default.replication.factor": count,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": count,
            "offsets.topic.num.partitions": INTERNAL_TOPIC_PARTITIONS,
            "transaction.state.log.num.partitions": INTERNAL_TOPIC_PARTITIONS,
            "transaction.state.log.replication.factor": count,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": count,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "log.retention.hours": 168,
        }
        dedupe = cleaner_buffer_bytes(self.heap)
        if dedupe is not None:
            settings["log.cleaner.dedupe.buffer.size"] = dedupe
        if credentials is not None:
            settings.update(self._security_properties(node, credentials))
        lines = [f"# Written by mesh-stream for node {node.node_id} of cluster {state.cluster_id}"]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _security_properties(
        self, node: NodeState, credentials: BrokerCredentials
    ) -> dict[str, object]:
        """Listener, SASL and authorizer settings of a secured node (see the module doc)."""
        listener = "SASL_SSL" if credentials.security == SASL_SSL else "SASL_PLAINTEXT"
        admin = credentials.password(ADMIN).get_secret_value()
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        settings: dict[str, object] = {
            "listeners": f"{listener}://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"{listener}://{HOST}:{node.port}",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM.value,
            "sasl.mechanism.inter.broker.protocol": MECHANISM.value,
            f"listener.name.{listener.lower()}.{MECHANISM.value.lower()}.sasl.jaas.config": (
                f'{scram} required username="{ADMIN}" password="{admin}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required username="{ADMIN}" password="{admin}" user_{ADMIN}="{admin}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }
        if credentials.security == SASL_SSL:
            tls = self.data_dir / TLS_DIR
            settings.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": tls / "broker.pem",
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": tls / "ca.pem",
                    "ssl.client.auth": "none",
                }
            )
        return settings

    def _configure(
        self,
        state: ClusterState,
        node: NodeState,
        *,
        format_storage: bool,
        java: str,
        credentials: BrokerCredentials | None = None,
    ) -> None:
        directory = self.node_dir(node.node_id)
        directory.mkdir(parents=True, exist_ok=True)
        properties = directory / "server.properties"
        text = properties_text(self._properties(state, node, credentials))
        if credentials is None:
            properties.write_text(text)
        else:
            write_private(properties, text)  # holds the admin password
        if not format_storage:
            return
        self._clear_unlaunched_format(directory / "data")
        arguments = [
            *self.jvm_options,
            "-cp",
            self.distribution.classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={state.cluster_id}",
            f"--config={properties}",
            "--ignore-formatted",
        ]
        argfile = directory / "format.args"
        if credentials is not None:
            # Passwords go through a java @argfile (0600, removed after), never the command
            # line, which other users of the machine can read in /proc.
            for name, password in credentials.users.items():
                arguments.append(
                    f"--add-scram={MECHANISM.value}=[name={name},"
                    f"password={password.get_secret_value()}]"
                )
            write_private(argfile, "\n".join(f'"{a}"' for a in arguments) + "\n")
            command = [java, f"@{argfile}"]
        else:
            command = [java, *arguments]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, env=java_environment()
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise BrokerError(
                f"formatting {directory / 'data'} for node {node.node_id} failed:\n"
                f"{(result.stdout + result.stderr).strip()[-2000:]}"
            )

    def _clear_unlaunched_format(self, data: Path) -> None:
        """Make way for a new format of ``data``, a node folder no recorded cluster owns.

        A start interrupted while formatting leaves folders that only a format wrote (another
        cluster id, never launched): they go. A folder a node ran in holds Kafka data, so it
        is refused rather than lost.
        """
        if not data.is_dir():
            return
        found = {entry.name for entry in data.iterdir()}
        if found <= FORMAT_ONLY_FILES:
            shutil.rmtree(data)
            return
        raise ConfigurationError(
            f"{data} holds Kafka data but {self.state_file} records no cluster (was it "
            f"deleted?); use --fresh to erase that data, or pick another MESH_DATA_DIR"
        )

    def _launch(self, node: NodeState, java: str) -> int:
        directory = self.node_dir(node.node_id)
        log = self.log_file(node.node_id)
        command = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={resource_path('log4j2.yaml')}",
            "-cp",
            self.distribution.classpath,
            "kafka.Kafka",
            str(directory / "server.properties"),
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                start_new_session=True,
                env=java_environment(),
            )
        return process.pid

    def _wait_ready(
        self, state: ClusterState, timeout: float, connection: KafkaConnection | None = None
    ) -> None:
        connection = connection or KafkaConnection.create(state.bootstrap_servers)
        # log_level 0 keeps librdkafka's connection-refused chatter out of the terminal.
        seen: list[KafkaError] = []
        admin = make_admin(connection, {"log_level": 0, "error_cb": seen.append})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            admin.poll(0)
            refused = next((e for e in seen if e.code() == KafkaError._AUTHENTICATION), None)
            if refused is not None:
                raise BrokerError(
                    f"the local cluster refused its own admin credentials from "
                    f"{self.data_dir / CREDENTIALS_FILE}: "
                    f"{explain_kafka_error(refused, connection)}; start with --fresh to "
                    f"make a new cluster and credentials"
                )
            for node in state.nodes:
                if node.pid is not None and not process_alive(node.pid):
                    raise BrokerError(
                        f"Kafka node {node.node_id} exited during start-up. Last lines of "
                        f"{self.log_file(node.node_id)}:\n{log_tail(self.log_file(node.node_id))}"
                    )
            remaining = deadline - time.monotonic()
            try:
                metadata = admin.list_topics(timeout=max(0.1, min(2.0, remaining)))
            except Exception:
                time.sleep(0.5)
                continue
            if len(metadata.brokers) == len(state.nodes) and metadata.controller_id >= 0:
                self.progress(f"Kafka is up at {state.bootstrap_servers}")
                return
            time.sleep(0.5)
        logs = "\n".join(
            f"--- {self.log_file(n.node_id)} ---\n{log_tail(self.log_file(n.node_id))}"
            for n in state.nodes
        )
        raise BrokerStartTimeoutError(
            f"Kafka did not answer at {state.bootstrap_servers} within {timeout:.0f}s "
            f"(raise it with --timeout or MESH_BROKER_START_TIMEOUT). Last log lines:\n{logs}"
        )

    # -- stop --------------------------------------------------------------------------
    def stray_pids(self) -> list[int]:
        """Kafka nodes running from this data dir that the state file does not record
        (a crash between launch and saving the state, or an interrupted stop)."""
        marker = str(self.data_dir / "node-").encode()
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            arguments = cmdline.split(b"\0")
            ours = any(argument.startswith(marker) for argument in arguments)
            if ours and b"kafka.Kafka" in arguments and process_alive(int(entry.name)):
                found.append(int(entry.name))
        return sorted(found)

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop every node: SIGTERM, wait up to ``timeout``, then SIGKILL. Returns pids.

        With ``cluster.json`` damaged, the nodes still running from the data folder (found by
        their command line) are stopped all the same, so that ``--fresh`` can follow."""
        try:
            state = self._load_state()
        except ConfigurationError:
            state = None  # damaged: the running nodes are found by their command lines
        else:
            if state is None:
                return []
        recorded = state.nodes if state is not None else []
        pids = [n.pid for n in recorded if n.pid is not None and process_alive(n.pid)]
        pids += [pid for pid in self.stray_pids() if pid not in pids]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
            time.sleep(0.2)
        for pid in pids:
            if process_alive(pid):
                self.progress(f"node pid {pid} did not stop within {timeout:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
            time.sleep(0.1)
        if state is not None:  # a damaged cluster.json stays for --fresh to replace
            for node in state.nodes:
                node.pid = None
            self._save_state(state)
        return pids
