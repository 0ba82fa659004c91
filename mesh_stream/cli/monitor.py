"""`mesh monitor`: measure every registered product against its SLOs, every interval."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import click

from mesh_stream.broker.reachability import existing_topics
from mesh_stream.cli.options import (
    FiniteFloatRange,
    WholeNumberRange,
    checked_bootstrap_servers,
    checked_host,
    checked_registry_url,
)
from mesh_stream.cli.signals import on_stop_signals
from mesh_stream.errors import ConfigurationError
from mesh_stream.health import Figure, FigureName, ProductHealth
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.logformat import configure_logging
from mesh_stream.monitor import MonitorMetrics, ProductMonitor, Round
from mesh_stream.monitor.service import NotPublishedError
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

#: Exit status of `mesh monitor --once` when a product is breached (errors stay 1).
BREACHED_EXIT = 4

log = logging.getLogger("mesh_stream.monitor")


def _value(health: ProductHealth, name: FigureName, *, worst: bool = False) -> str:
    """A figure of the product as a table cell (the largest over subjects with ``worst``)."""
    found: list[Figure] = [
        f
        for f in health.figures
        if f.name == name and (worst or f.subject is None) and f.value is not None
    ]
    if not found:
        return "-"
    value = max(f.value for f in found if f.value is not None)
    return f"{value:.3g}" if name == FigureName.DLQ_RATIO else f"{value:.1f}"


def table(healths: tuple[ProductHealth, ...]) -> str:
    """The round as a table: one product a line, worst status first."""
    header = ("PRODUCT", "STATUS", "SINCE", "FRESH S", "REC/MIN", "DLQ RATIO", "LAG S", "REASON")
    rows = [header]
    order = {"breached": 0, "degraded": 1, "no data": 2, "ok": 3}
    for health in sorted(healths, key=lambda h: (order[h.status.value], h.product)):
        since = dt.datetime.fromtimestamp(health.since_ms / 1000, dt.UTC).strftime("%H:%M:%S")
        rows.append(
            (
                health.product,
                health.status.value,
                since,
                _value(health, FigureName.FRESHNESS_SECONDS),
                _value(health, FigureName.RECORDS_PER_MINUTE),
                _value(health, FigureName.DLQ_RATIO),
                _value(health, FigureName.LAG_SECONDS, worst=True),
                health.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


@click.command("monitor", short_help="Measure every product against its SLOs, every interval.")
@click.option(
    "--interval",
    type=FiniteFloatRange(min=1, max=604_800),
    help="Seconds between measurements, at most a week. [env: MESH_MONITOR_INTERVAL_SECONDS; "
    "default 60]",
)
@click.option(
    "--once",
    is_flag=True,
    help=f"Measure once, print the table and exit: 0 when no product is breached, "
    f"{BREACHED_EXIT} when one is.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each product's health as one JSON line."
)
@click.option(
    "--metrics-port",
    type=WholeNumberRange(min=0, max=65535),
    help="Serve Prometheus metrics on this port at /metrics (0: a free port). [default: none]",
)
@click.option(
    "--metrics-host",
    default="0.0.0.0",
    show_default=True,
    callback=checked_host,
    help="Address /metrics listens on.",
)
@click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka bootstrap servers. [env: MESH_BOOTSTRAP_SERVERS; default: the local broker]",
)
@click.option(
    "--registry-url",
    callback=checked_registry_url,
    help="Registry URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Log level (lines on stderr, text or MESH_LOG_FORMAT=json).",
)
@click.pass_obj
def monitor(
    settings: MeshSettings,
    interval: float | None,
    once: bool,
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
    bootstrap_servers: str | None,
    registry_url: str | None,
    log_level: str,
) -> int:
    """Measure every product the registry lists, from Kafka, every interval.

    For each product: freshness (overall and per partition), records and dead letters per
    minute, the DLQ ratio, the lag of each registered consumer group in records and seconds,
    and, for a derived product, how far it is behind its inputs. Each figure is judged
    against the descriptor's SLOs; the product's status (ok, degraded, breached, no data) is
    written to MESH_HEALTH_TOPIC, breaches and recoveries to MESH_ALERTS_TOPIC (and POSTed
    to MESH_ALERT_WEBHOOK_URL when set). Several monitors may run at once. Ctrl-C or SIGTERM
    stops after the measurement in progress.
    """
    updates = {
        "bootstrap_servers": bootstrap_servers,
        "registry_url": registry_url,
        "monitor_interval_seconds": interval,
    }
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    # undone when the command ends (an in-process caller keeps its own logging)
    click.get_current_context().call_on_close(
        configure_logging(log_level.upper(), settings.log_format)
    )
    connection = KafkaConnection.from_settings(settings, default_client_id="mesh-monitor")
    existing_topics(connection)  # a clear error when no broker answers or it refuses us
    webhook = settings.alert_webhook_url
    metrics = MonitorMetrics() if metrics_port is not None else None
    try:
        with (
            RegistryClient.from_settings(settings) as registry,
            ProductMonitor(
                connection,
                registry,
                health_topic=settings.health_topic,
                alerts_topic=settings.alerts_topic,
                interval=settings.monitor_interval_seconds,
                webhook_url=webhook.get_secret_value() if webhook is not None else None,
                metrics=metrics,
            ) as products,
        ):
            if metrics is not None and metrics_port is not None:
                port = _serve_metrics(metrics, metrics_host, metrics_port)
                log.info("metrics at http://%s:%d/metrics", metrics_host, port)
            if once:
                try:
                    done = products.measure()
                except NotPublishedError as exc:  # what was measured is shown all the same
                    show(exc.measured, as_json=as_json)
                    raise
                show(done, as_json=as_json)
                log.info(done.summary())
                return BREACHED_EXIT if done.breached else 0
            log.info(
                "measuring every %g s (health to %s, alerts to %s)",
                settings.monitor_interval_seconds,
                settings.health_topic,
                settings.alerts_topic,
            )
            stop = threading.Event()

            def stop_after_the_round(_signum: int, _frame: object) -> None:
                """Ctrl-C and SIGTERM end the loop after the round in progress, which may
                wait on the registry, Kafka or the webhook: said at once (h51: a minute
                passed without a word), and a second signal stops at once."""
                if stop.is_set():
                    raise KeyboardInterrupt
                stop.set()
                click.echo(
                    "stopping after the measurement in progress (Ctrl-C again to stop now)",
                    err=True,
                )

            with on_stop_signals(stop_after_the_round):
                products.run(
                    stop, on_round=(lambda done: show(done, as_json=True)) if as_json else None
                )
            log.info("stopped")
    finally:
        if metrics is not None:
            metrics.close()
    return 0


def _serve_metrics(metrics: MonitorMetrics, host: str, port: int) -> int:
    """Start ``/metrics``; a port that is taken (or a host that cannot be) names the option."""
    try:
        return metrics.serve(port, host)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigurationError(
            f"cannot listen on {host}:{port} for /metrics: {reason}; is the port taken (another "
            f"monitor?) choose another with `mesh monitor --metrics-port` (0 picks a free one), "
            f"or fix --metrics-host"
        ) from exc


def show(done: Round, *, as_json: bool) -> None:
    """Print a round: one JSON line per product, or the table."""
    if as_json:
        for health in done.healths:
            click.echo(health.model_dump_json())
    else:
        click.echo(table(done.healths))
