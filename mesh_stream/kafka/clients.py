"""The one place that builds Kafka clients (confluent-kafka producers, consumers, admin).

Every client gets its connection keys (servers, security protocol, SASL, TLS, client id)
from a :class:`~mesh_stream.kafka.connection.KafkaConnection`, so a secured cluster works
for every part of the mesh at once. ``config`` adds the client's own keys on top
(``group.id``, ``acks``, callbacks, ...). A unit test fails when ``Producer(``,
``Consumer(``, ``AdminClient(`` or ``NewTopic(`` is called anywhere else in
``mesh_stream/`` than the files it lists.
"""

from __future__ import annotations

import logging
import numbers
import re
import socket
import threading
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.cimpl import NewTopic

from mesh_stream.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    KafkaAuthenticationError,
    MeshError,
    SettingsError,
)
from mesh_stream.kafka.connection import SETTING, KafkaConnection, explain_kafka_error
from mesh_stream.settings import SecurityProtocol

# Error codes after which waiting longer cannot help: the credentials or TLS are wrong.
_FATAL_CONNECT_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._SSL,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)


_DOWN_CODES = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})


def is_fatal(error: KafkaError) -> bool:
    """Whether ``error`` leaves its client unusable for good.

    librdkafka reports a fatal error to a consumer as a message whose error has the code
    ``_FATAL`` but whose ``fatal()`` flag is False (e.g. a static member fenced out of its
    group), and through ``error_cb`` with the flag set: both count.
    """
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


#: The longest a librdkafka call may wait, seconds (2**31 - 1 milliseconds): consume(),
#: poll(), flush().
MAX_WAIT_SECONDS = 2_147_483.0


def is_wait_seconds(value: object) -> bool:
    """Whether ``value`` is a number of seconds a librdkafka call can wait: 0 (no wait) to
    :data:`MAX_WAIT_SECONDS`, not a bool (a negative wait would be for ever)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and 0 <= float(value) <= MAX_WAIT_SECONDS
    )


#: librdkafka's default ``message.max.bytes``: the largest record a producer sends.
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000
#: What librdkafka adds to key + value + headers before comparing with ``message.max.bytes``
#: (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: the varints and attributes of one v2 record).
RECORD_OVERHEAD_BYTES = 36
#: librdkafka's default ``batch.size``: the most bytes of records it sends in one batch.
LIBRDKAFKA_BATCH_SIZE = 1_000_000
#: What a v2 record batch adds to its records (header, CRC, producer id and sequence).
BATCH_OVERHEAD_BYTES = 61


def batches_within(settings: Mapping[str, Any], limits: list[int]) -> dict[str, Any]:
    """Producer ``settings`` with ``batch.size`` below the smallest of the topics' ``limits``
    (their ``max.message.bytes``).

    The broker refuses a whole batch over a topic's ``max.message.bytes``, so records that
    fit one by one would fail together, and again at every retry. Batches that fit leave a
    large record alone in its own batch (librdkafka sends a record over ``batch.size`` by
    itself), refused alone.
    """
    if not limits:
        return dict(settings)
    fitting = min(limits) - BATCH_OVERHEAD_BYTES
    given = int(settings.get("batch.size", LIBRDKAFKA_BATCH_SIZE))
    return dict(settings) if given <= fitting else {**settings, "batch.size": max(1, fitting)}


#: What every producer of the platform sets, and no caller may weaken: acknowledged by every
#: in-sync replica, and retried without duplicates or reordering. It is what makes "nothing
#: lost" true for the SDK's publishers, the processors' outputs, the monitor and the registry.
NO_LOSS_PRODUCER_CONFIG: dict[str, Any] = {"acks": "all", "enable.idempotence": True}
#: librdkafka keys that say which cluster and who: they come from the connection (settings
#: or ``KafkaConnection``), never from a caller's extra ``config``, where they replaced the
#: connection after its checks had run against another cluster (h53).
CONNECTION_KEYS = ("bootstrap.servers", "metadata.broker.list", "security.protocol", "client.id")
CONNECTION_KEY_PREFIXES = ("sasl.", "ssl.", "ssl_")


def refuse_connection_keys(
    config: Mapping[str, Any] | None, who: str, *, also: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``config`` (a caller's extra librdkafka settings) as a dict, refusing with a
    :class:`ConfigurationError` a key the connection owns (:data:`CONNECTION_KEYS`, SASL and
    TLS keys) or one of ``also`` (key -> where it is set instead), and anything not a mapping
    of text keys. ``who`` names the client in the message (``producer``, ``consumer``)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise ConfigurationError(
            f"{who} config must be a mapping of librdkafka setting names to values, not "
            f"{type(config).__name__}"
        )
    for key in config:
        lowered = key.lower()
        if lowered in CONNECTION_KEYS or lowered.startswith(CONNECTION_KEY_PREFIXES):
            raise ConfigurationError(
                f"{who} config {key!r} is not allowed: the cluster and the credentials come "
                f"from the connection (MESH_BOOTSTRAP_SERVERS, MESH_KAFKA_* settings, or a "
                f"KafkaConnection), which the product checks ran against"
            )
        if also is not None and lowered in also:
            raise ConfigurationError(f"{who} config {key!r} is not allowed: {also[lowered]}")
    return dict(config)


#: librdkafka's codes for a record that got no answer within ``message.timeout.ms``: it may
#: have been stored all the same, and a NOT_ENOUGH_REPLICAS retried to the end ends so too.
UNANSWERED_CODES = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT})


#: Where the producers' and consumers' own librdkafka lines go (a failed connect, a broker
#: gone), served by their ``poll``/``consume``/``flush``: through Python logging, so the
#: application's setup decides their format (``MESH_LOG_FORMAT=json`` too), level and place.
#: Written straight to stderr by librdkafka instead, they bypassed all three. An application
#: that sets up no logging still sees the warnings and errors on stderr (Python's last resort).
LIBRDKAFKA_LOGGER = logging.getLogger("mesh_stream.kafka.librdkafka")

#: A librdkafka line said again within this many seconds is counted, not logged.
REPEAT_QUIET_S = 30.0


class RepeatedLines(logging.Filter):
    """Lets a librdkafka line through once per :data:`REPEAT_QUIET_S`, then with a count.

    A client whose broker is down retries every 50-100 ms and says so each time: a consumer
    of an unreachable Kafka logged 20 identical ERROR lines a second. Lines that differ only
    in their times and counts (``after 0ms in state CONNECT``) count as the same; the next
    one let through after the quiet time says how many were not shown.
    """

    _NUMBERS = re.compile(r"\d+(?=ms\b)|\d+(?= identical)")
    _KEPT = 1_000  # distinct lines remembered (a long run of different ones starts again)

    def __init__(self, quiet_s: float = REPEAT_QUIET_S) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}  # line -> (let through at, held since)

    def filter(self, record: logging.LogRecord) -> bool:
        line = self._NUMBERS.sub("#", record.getMessage())
        now = time.monotonic()
        with self._lock:
            shown_at, held = self._seen.get(line, (None, 0))
            if shown_at is not None and now - shown_at < self.quiet_s:
                self._seen[line] = (shown_at, held + 1)
                return False
            if len(self._seen) >= self._KEPT:
                self._seen.clear()
            self._seen[line] = (now, 0)
        if held:
            record.msg = (
                f"{record.getMessage()} ({held} more like it in {self.quiet_s:g} s not shown)"
            )
            record.args = ()
        return True


LIBRDKAFKA_LOGGER.addFilter(RepeatedLines())


def _logged(config: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"logger": LIBRDKAFKA_LOGGER, **(config or {})}


def make_producer(conn: KafkaConnection, config: Mapping[str, Any] | None = None) -> Producer:
    """A confluent-kafka ``Producer`` on ``conn`` with ``config`` on top."""
    return _built(Producer, conn.librdkafka_config(_logged(config)))


def make_consumer(conn: KafkaConnection, config: Mapping[str, Any] | None = None) -> Consumer:
    """A confluent-kafka ``Consumer`` on ``conn``; ``config`` must hold ``group.id``."""
    return _built(Consumer, conn.librdkafka_config(_logged(config)))


def make_admin(conn: KafkaConnection, config: Mapping[str, Any] | None = None) -> AdminClient:
    """A confluent-kafka ``AdminClient`` on ``conn`` with ``config`` on top."""
    return _built(AdminClient, conn.librdkafka_config(config))


_Client = TypeVar("_Client")


def _built(make: Callable[[dict[str, Any]], _Client], config: dict[str, Any]) -> _Client:
    """``make(config)``; a setting librdkafka refuses (an unknown name, a value it cannot
    take, e.g. from an SDK user's ``config=``) is a ConfigurationError in its words, which
    name the setting."""
    try:
        return make(config)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError._INVALID_ARG:
            unusable = _unusable_pem(config, error.str())
            if unusable is not None:
                raise unusable from exc
            raise ConfigurationError(f"Kafka client configuration refused: {error.str()}") from exc
        raise
    except (TypeError, ValueError) as exc:  # a value of a type confluent-kafka cannot pass
        raise ConfigurationError(f"Kafka client configuration refused: {exc}") from exc


#: librdkafka's TLS file properties and the settings that give them.
_PEM_SETTINGS = {
    "ssl.ca.location": "MESH_KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "MESH_KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "MESH_KAFKA_SSL_KEY_LOCATION",
}


def _unusable_pem(config: Mapping[str, Any], text: str) -> SettingsError | None:
    """A PEM file OpenSSL could not read (a BEGIN line over a broken body), named by its
    setting rather than librdkafka's property (h42); None for any other refusal."""
    for prop, setting in _PEM_SETTINGS.items():
        if f"{prop} failed" in text:
            return SettingsError(
                f"{setting}: {config.get(prop)} is not a usable PEM file (OpenSSL could not "
                f"read it: {text.rsplit(':', 1)[-1].strip() or text}); point it at the PEM "
                f"{'CA certificate' if prop == 'ssl.ca.location' else 'file'} the cluster "
                f"gave you"
            )
    return None


def new_topic(
    name: str,
    *,
    partitions: int,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
) -> NewTopic:
    """A topic to create; replication factor -1 lets the cluster apply its
    ``default.replication.factor``."""
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=dict(config or {}),
    )


@dataclass(frozen=True)
class EarlierRead:
    """A topic its group has committed nothing on, having read earlier topics of it (a
    product's earlier majors)."""

    #: The earlier topics the group committed offsets on.
    topics: tuple[str, ...]
    #: Their records past those offsets: what the group leaves unread there by moving on (0
    #: when not counted).
    unread: int


def earlier_reads(
    consumer: Consumer,
    earlier: Mapping[str, Sequence[str]],
    known: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
    *,
    count_unread: bool = True,
) -> dict[str, EarlierRead]:
    """For each topic of ``earlier`` (topic -> its earlier topics, e.g. a product's earlier
    majors) that ``consumer``'s group has committed nothing on while it has committed on one
    of the earlier ones: those, and (``count_unread``) the records it has not read there.
    ``known`` is the cluster's topic metadata, asked when not given. A topic Kafka does not
    answer for is no move (the others are still said)."""
    moved: dict[str, EarlierRead] = {}
    wanted = {topic: olds for topic, olds in earlier.items() if olds}
    if not wanted:
        return moved
    if known is None:
        try:
            known = consumer.list_topics(timeout=timeout).topics
        except KafkaException:
            return moved
    for topic, olds in wanted.items():
        asked = [
            TopicPartition(name, partition)
            for name in (topic, *olds)
            if name in known
            for partition in known[name].partitions
        ]
        if not asked:
            continue
        try:
            committed = consumer.committed(asked, timeout=timeout)
            read = {tp.topic for tp in committed if tp.offset >= 0}
            if not read or topic in read:
                continue
            unread = 0
            for tp in committed if count_unread else ():
                if tp.topic in read:
                    marks = consumer.get_watermark_offsets(tp, timeout=timeout)
                    if marks is not None:  # None: no answer in time, not counted
                        unread += max(0, marks[1] - max(tp.offset, marks[0]))
        except KafkaException:
            continue
        moved[topic] = EarlierRead(tuple(sorted(read)), unread)
    return moved


def unread_partitions(
    consumer: Consumer, *, from_start: Container[str], timeout: float = 5.0
) -> list[str]:
    """The consumer's assigned partitions that hold records it has not returned yet, each as
    ``topic[partition]@next..end`` (empty when it has read all there was). A partition Kafka
    cannot say of within ``timeout`` s in all counts as unread, as ``topic[partition] (not
    checked: ...)``: "nothing left" is said only when Kafka said so.

    A partition nothing was returned from yet starts at the group's committed offset (while
    Kafka still holds it), else at its oldest record for a topic in ``from_start`` and at its
    end for the others (the consumer's ``auto.offset.reset``). ``end`` is what a
    read_committed consumer can read: a transaction's markers, aborted records and an open
    transaction count as read. Being assigned a partition is not having its records: a
    ``--timeout`` counted from the join alone can end before the first fetch answers.
    """
    deadline = time.monotonic() + timeout
    assigned = consumer.assignment()
    while True:
        unread, checked, why = _unread_once(consumer, assigned, from_start, deadline)
        if why is None or not why[1] or time.monotonic() + 0.1 >= deadline:
            break
        time.sleep(0.1)  # e.g. the group coordinator still loading: asked again
    reason = f"Kafka did not answer within {timeout:g} s" if why is None else why[0]
    unread.extend(
        f"{tp.topic}[{tp.partition}] (not checked: {reason})" for tp in assigned[checked:]
    )
    return unread


def _unread_once(
    consumer: Consumer,
    assigned: list[TopicPartition],
    from_start: Container[str],
    deadline: float,
) -> tuple[list[str], int, tuple[str, bool] | None]:
    """:func:`unread_partitions`' one attempt: the unread found, how many partitions were
    checked, and why it stopped short (Kafka's error and whether it is retriable), if so."""

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    unread: list[str] = []
    checked = 0
    try:
        positions = consumer.position(assigned)
        unknown = [TopicPartition(tp.topic, tp.partition) for tp in positions if tp.offset < 0]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (consumer.committed(unknown, timeout=left()) if unknown else [])
        }
        for tp in positions:
            if time.monotonic() >= deadline:
                break
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=left()
            )
            start = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            if start < low:  # none, or gone with retention: where the reset policy starts
                start = low if tp.topic in from_start else high
            if start < high:
                unread.append(f"{tp.topic}[{tp.partition}]@{start}..{high}")
            checked += 1
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None:
            return unread, checked, (f"Kafka: {exc}", False)
        return unread, checked, (f"Kafka: {error.str()}", error.retriable())
    return unread, checked, None


T = TypeVar("T")


def interruptibly(call: Callable[[], T]) -> T:
    """``call()`` (a blocking librdkafka call) run on a daemon thread and waited for here.

    A Ctrl-C during librdkafka's own wait is handled only once the call returns, and is
    lost when the call then raises a KafkaException; a Python wait is interrupted at once.
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True, name="mesh-kafka-wait")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    done, value = outcome[0]
    if not done:
        raise value
    return cast(T, value)


def probe(conn: KafkaConnection, timeout: float = 10.0) -> ClusterMetadata:
    """The cluster's metadata, or our error if it cannot be had within ``timeout`` s.

    Fails early (not at the timeout) on an authentication or TLS error, with the
    message of :func:`~mesh_stream.kafka.connection.explain_kafka_error`.
    """
    return probed_admin(conn, timeout)[0]


class ConnectRefusals:
    """An ``error_cb`` keeping the first refused login or TLS handshake a client reports
    since it last got records (nothing else: a long outage's transport errors are not kept);
    :meth:`clear` when records come, so a refusal that healed is forgotten."""

    def __init__(self, then: Callable[[KafkaError], object] | None = None) -> None:
        if then is not None and not callable(then):
            raise ConfigurationError(f"error_cb must be callable, got {type(then).__name__}")
        self.first: KafkaError | None = None
        self._then = then  # a caller's own error_cb, still called with every error

    def __call__(self, error: KafkaError) -> None:
        if self.first is None and error.code() in _FATAL_CONNECT_CODES:
            self.first = error
        if self._then is not None:
            self._then(error)

    def clear(self) -> None:
        self.first = None


def connect_refusal(conn: KafkaConnection, seen: Iterable[KafkaError]) -> MeshError | None:
    """The error to raise for the first refused login or TLS handshake among ``seen`` (a
    client's ``error_cb`` reports), naming the settings to fix; None when there is none."""
    fatal = next((e for e in seen if e.code() in _FATAL_CONNECT_CODES), None)
    if fatal is None:
        return None
    mismatch = plaintext_mismatch(conn)  # SASL or TLS against a PLAINTEXT listener
    found = mismatch or explain_kafka_error(fatal, conn)
    found.__cause__ = KafkaException(fatal)
    return found


def probed_admin(conn: KafkaConnection, timeout: float = 10.0) -> tuple[ClusterMetadata, Any]:
    """:func:`probe`, with the admin client that asked, for the caller to go on with (one
    connection, not two)."""
    seen: list[KafkaError] = []
    admin = make_admin(conn, {"error_cb": seen.append, "log_level": 0})
    deadline = time.monotonic() + timeout
    last: KafkaError | KafkaException | None = None
    asked_down: KafkaError | None = None
    started = time.monotonic()
    while True:
        admin.poll(0)  # serves error_cb
        refused = connect_refusal(conn, seen)
        if refused is not None:
            raise refused
        down = next((e for e in seen if e.code() in _DOWN_CODES), asked_down)
        if down is not None and time.monotonic() - started >= 2.0:
            problem = listener_problem(conn, time.monotonic() - started)
            if problem is not None:
                raise problem from KafkaException(down)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            admin.poll(0)
            break
        try:
            # short asks while errors may still come in; then the rest of the time at once,
            # for a cluster whose metadata takes longer than a second to answer
            early = time.monotonic() - started < FAIL_FAST_S
            wait = max(0.1, min(1.0, remaining) if early else remaining)
            return interruptibly(partial(admin.list_topics, timeout=wait)), admin
        except KafkaException as exc:
            last = exc
            if _code_of(exc) in _DOWN_CODES:
                # with several bootstrap servers no "all brokers down" is reported (they
                # are not down together), only the asks' own errors (h59: 10 s, then "Failed
                # to get metadata: Local: Timed out" from a SASL listener)
                asked_down = exc.args[0]
    cause = seen[-1] if seen else last
    # A port that takes the connection and never answers may not have been reported down
    # before the deadline: named as what it is (as reachability.existing_topics names it),
    # not as "no Kafka broker answers" (hostile-input campaign).
    waited = time.monotonic() - started
    reply = _listener_reply(conn)
    if reply is not None and (
        reply != "plain" or conn.security_protocol is not SecurityProtocol.PLAINTEXT
    ):
        raise _handshake_error(conn, reply, waited) from (
            cause if isinstance(cause, KafkaException | None) else KafkaException(cause)
        )
    if cause is None:
        raise BrokerUnreachableError(
            f"no Kafka broker answered at {conn.bootstrap_servers} within {timeout:g} s; "
            f"check MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and "
            f"MESH_KAFKA_SECURITY_PROTOCOL"
        )
    raise explain_kafka_error(cause, conn) from (
        cause if isinstance(cause, KafkaException) else KafkaException(cause)
    )


def _code_of(exc: KafkaException) -> int | None:
    """The code of the Kafka error ``exc`` carries."""
    inner = exc.args[0] if exc.args else None
    return int(inner.code()) if isinstance(inner, KafkaError) else None


#: Seconds :func:`probe` asks in short steps, so an authentication or TLS error reported
#: meanwhile stops it at once.
FAIL_FAST_S = 3.0

#: Seconds :func:`_listener_reply` waits for a reply to its Kafka request.
REPLY_WAIT = 2.0

#: An ApiVersions v0 request (api key 18), correlation id 1, client id "mesh": the request
#: every Kafka listener answers before any authentication, and a TLS listener rejects.
_API_VERSIONS = b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04mesh"
#: A Metadata v0 request (api key 3) for no topic, correlation id 2: a PLAINTEXT listener
#: answers it; a SASL listener closes the connection (it wants the handshake first).
_METADATA = b"\x00\x00\x00\x12\x00\x03\x00\x00\x00\x00\x00\x02\x00\x04mesh\x00\x00\x00\x00"

ListenerReply = Literal["plain", "answered", "closed", "silent", "http"]


def _answered(sock: socket.socket) -> bool:
    """Whether a whole Kafka response comes back (its size, then that many bytes)."""
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return False
        head += chunk
    left = int.from_bytes(head, "big")
    while left > 0:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            return False
        left -= len(chunk)
    return True


def _listener_reply(conn: KafkaConnection, wait: float = REPLY_WAIT) -> ListenerReply | None:
    """What a bootstrap server that accepts TCP does with plain Kafka requests: answers them
    all (``plain``: a PLAINTEXT listener), answers ApiVersions only and closes on the next
    (``answered``: a SASL listener), closes the connection, answers in HTTP (``http``: a web
    server, the registry say), or stays silent for ``wait`` s; None when none accepts TCP."""
    for host, port in conn.addresses:
        try:
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=1.0)
        except (OSError, ValueError):
            continue
        with sock:
            try:
                sock.settimeout(wait)
                sock.sendall(_API_VERSIONS)
                if sock.recv(5, socket.MSG_PEEK).startswith(b"HTTP/"):  # a web server's 400
                    return "http"
                if not _answered(sock):
                    return "closed"
            except TimeoutError:
                return "silent"
            except OSError:  # reset by the peer
                return "closed"
            try:
                sock.sendall(_METADATA)
                return "plain" if _answered(sock) else "answered"
            except OSError:  # closed on the second request (a timeout too: not plain Kafka)
                return "answered"
    return None


def plaintext_mismatch(conn: KafkaConnection) -> KafkaAuthenticationError | None:
    """The error to give when ``conn`` uses SASL or TLS and its bootstrap server is a
    PLAINTEXT listener (its SASL handshake or TLS then fails, which reads as a refused
    credential or certificate); None otherwise."""
    if conn.security_protocol is SecurityProtocol.PLAINTEXT:
        return None
    problem = _handshake_error(conn, "plain", 0) if _listener_reply(conn) == "plain" else None
    return problem if isinstance(problem, KafkaAuthenticationError) else None


def listener_problem(conn: KafkaConnection, waited: float) -> MeshError | None:
    """Why a client on ``conn`` got nothing from a bootstrap server that accepts TCP (the
    listener wants other security settings, or is no Kafka listener); None when no server
    accepts TCP at all (nothing listens)."""
    reply = _listener_reply(conn)
    return None if reply is None else _handshake_error(conn, reply, waited)


def _handshake_error(
    conn: KafkaConnection, reply: ListenerReply, waited: float
) -> KafkaAuthenticationError | BrokerUnreachableError:
    """A server listens but our Kafka client gets nothing from it: what it did, and the
    settings to check. A listener that answers a bare request or closes the connection
    wants other security settings (a SASL listener answers ApiVersions, then closes on the
    next request); one that never answers may not be Kafka at all."""
    protocol = conn.security_protocol.value
    if reply == "plain" and conn.security_protocol is not SecurityProtocol.PLAINTEXT:
        return KafkaAuthenticationError(
            f"{conn.bootstrap_servers} is a PLAINTEXT listener (it answers Kafka requests "
            f"without credentials or TLS), but mesh connects over {protocol}: set "
            f"MESH_KAFKA_SECURITY_PROTOCOL=PLAINTEXT (and drop the MESH_KAFKA_SASL_* and "
            f"MESH_KAFKA_SSL_* settings), or point MESH_BOOTSTRAP_SERVERS at the cluster's "
            f"{protocol} listener"
        )
    if reply == "http":  # h53: it was said to need credentials or TLS
        return BrokerUnreachableError(
            f"{conn.bootstrap_servers} is an HTTP server, not a Kafka listener (it answered a "
            f"Kafka request with HTTP: the registry's port, say); check MESH_BOOTSTRAP_SERVERS "
            f"(or --bootstrap-servers)"
        )
    if reply == "silent":
        return BrokerUnreachableError(
            f"{conn.bootstrap_servers} accepts TCP connections but gave no Kafka answer within "
            f"{waited:.0f} s (over {protocol}): it may not be a Kafka listener, or it is stuck; "
            f"check MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and "
            f"MESH_KAFKA_SECURITY_PROTOCOL"
        )
    if reply == "answered" and conn.security_protocol is SecurityProtocol.SASL_PLAINTEXT:
        # a SASL_PLAINTEXT listener (it answers ApiVersions, then closes on a request sent
        # before logging in), the protocol mesh speaks: so mesh's login itself was refused
        return KafkaAuthenticationError(
            f"authentication to {conn.bootstrap_servers} failed as {conn.sasl_username} with "
            f"{conn.sasl_mechanism}: the listener speaks SASL_PLAINTEXT, as mesh does, and "
            f"closes mesh's connections; check {SETTING['sasl_username']} / "
            f"{SETTING['sasl_password']} (and {SETTING['sasl_mechanism']})"
        )
    if conn.security_protocol is SecurityProtocol.PLAINTEXT:
        return KafkaAuthenticationError(
            f"{conn.bootstrap_servers} accepts connections but closes them on Kafka requests "
            f"sent over {protocol}: the listener needs credentials or TLS; check "
            "MESH_KAFKA_SECURITY_PROTOCOL, MESH_KAFKA_SASL_MECHANISM, MESH_KAFKA_SASL_USERNAME "
            "/ MESH_KAFKA_SASL_PASSWORD and MESH_KAFKA_SSL_CA_LOCATION"
        )
    # A secured client: a plain probe cannot tell a refused login from an untrusted
    # certificate or another protocol, so every setting in use is named (h42: a SASL_SSL
    # client with a wrong password or CA was told to check the protocol alone).
    checks = []
    if conn.security_protocol.uses_tls:
        checks.append(
            f"{SETTING['ssl_ca_location']} (the CA that signed the brokers' certificates)"
        )
        if conn.ssl_certificate_location is not None:
            checks.append(f"{SETTING['ssl_certificate_location']} / {SETTING['ssl_key_location']}")
    if conn.security_protocol.uses_sasl:
        checks.append(
            f"{SETTING['sasl_username']} / {SETTING['sasl_password']} (as {conn.sasl_username}, "
            f"with {SETTING['sasl_mechanism']}={conn.sasl_mechanism})"
        )
    checks.append(f"{SETTING['security_protocol']} (the listener's own)")
    return KafkaAuthenticationError(
        f"{conn.bootstrap_servers} accepts connections but closes mesh's {protocol} connections: "
        f"the TLS handshake or the login failed, or the listener speaks another protocol; check "
        + ", ".join(checks)
    )
