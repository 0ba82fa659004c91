"""Run one domain's share of the seeded story (:mod:`domains.story`) against the real mesh.

``python -m domains.<domain>.simulator --rate EVENTS_PER_S [--seed N] [--duration S |
--count N]`` registers the domain's products (schema and descriptor), then publishes the
domain's events through the SDK at the pace of the story clock. ``--rate`` is the story's total
rate over all four domains, so four simulators started with the same ``--seed``, ``--rate``
and ``--epoch-ms`` tell one consistent story: every payment refers to an order the orders
simulator placed, every shipment to a paid order.

Each record's Kafka timestamp is the moment the story says it reaches Kafka, so late events
really are late. Without ``--duration`` or ``--count`` a simulator runs until SIGTERM or
SIGINT, then flushes what it published and exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import FrameType

import click

from domains.story import DOMAINS, Story, StoryEvent, domain_events
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import MeshError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.producer import ProductPublisher, open_publisher
from mesh_stream.project import MeshProject, find_project
from mesh_stream.registration import register_source_product
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

#: Events the story scheduled more than this long before now are skipped, not sent in a
#: burst (a simulator restarted with an old ``--epoch-ms`` resumes "now").
CATCH_UP_MS = 5_000


def domain_products(domain: str, project: MeshProject) -> list[DataProduct]:
    return [p for p in project.descriptors() if p.domain == domain]


def paced(
    events: Iterator[StoryEvent],
    *,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
    wait: Callable[[float], bool] | None = None,
) -> Iterator[StoryEvent]:
    """Yield each event when the wall clock reaches its ``emit_at_ms``; skip stale ones."""
    sleep = wait or stop.wait
    for event in events:
        if stop.is_set():
            return
        delay = (event.emit_at_ms - clock() * 1000) / 1000
        if delay < -CATCH_UP_MS / 1000:
            continue
        if delay > 0 and sleep(delay):
            return
        yield event


def simulate(
    domain: str,
    settings: MeshSettings,
    *,
    rate: float,
    seed: int,
    epoch_ms: int,
    duration: float | None,
    count: int | None,
    stop: threading.Event,
    project: MeshProject | None = None,
) -> Counter[str]:
    """Publish the domain's events until the duration, the count or ``stop``; return counts.

    The products are the domain's descriptors in ``project`` (default: the project found
    from ``settings``, i.e. MESH_PROJECT_ROOT or the nearest mesh.yaml, as `mesh up` sets it).
    """
    project = project if project is not None else find_project(None, settings)
    products = domain_products(domain, project)
    story = Story(seed=seed, epoch_ms=epoch_ms, rate=rate)
    published: Counter[str] = Counter()
    end_ms = epoch_ms + int(duration * 1000) if duration is not None else None
    with ExitStack() as stack:
        registry = stack.enter_context(RegistryClient.from_settings(settings))
        publishers: dict[str, ProductPublisher] = {}
        connection = KafkaConnection.from_settings(settings, default_client_id=f"mesh-{domain}")
        for product in products:
            publisher = open_publisher(
                product,
                settings=settings,
                registry=registry,
                root=project.root,
                connection=connection,
            )
            stack.callback(publisher.close)
            if settings.producer_auto_register:  # else `mesh products apply` registers it
                register_source_product(registry, product, project.root)
            publishers[product.name] = publisher
        for event in paced(domain_events(story, domain), stop=stop):
            if end_ms is not None and event.emit_at_ms >= end_ms:
                break
            publishers[event.product].publish(event.value, timestamp_ms=event.emit_at_ms)
            published[event.product] += 1
            if count is not None and sum(published.values()) >= count:
                break
        for publisher in publishers.values():
            publisher.flush()
    return published


def command(domain: str) -> click.Command:
    """The click command of one domain's simulator."""

    @click.command(name=f"{domain}-simulator")
    @click.option(
        "--rate",
        type=click.FloatRange(min=0, min_open=True),
        required=True,
        help="Events per second of the whole story (all four domains); this simulator "
        "publishes its own domain's share of them.",
    )
    @click.option("--seed", type=int, default=42, show_default=True, help="Seed of the story.")
    @click.option(
        "--epoch-ms",
        type=int,
        default=None,
        help="Story start in epoch ms (default: now). Give every simulator the same value so "
        "their correlated events carry consistent times.",
    )
    @click.option(
        "--duration",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Stop after this many seconds of story time.",
    )
    @click.option(
        "--count",
        type=click.IntRange(min=1),
        default=None,
        help="Stop after publishing this many records.",
    )
    def run(
        rate: float, seed: int, epoch_ms: int | None, duration: float | None, count: int | None
    ) -> None:
        if duration is not None and count is not None:
            raise click.UsageError("give --duration or --count, not both")
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            click.echo(f"{domain} simulator: {signal.Signals(signum).name}, stopping", err=True)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        settings = MeshSettings()
        start = epoch_ms if epoch_ms is not None else int(time.time() * 1000)
        try:
            published = simulate(
                domain,
                settings,
                rate=rate,
                seed=seed,
                epoch_ms=start,
                duration=duration,
                count=count,
                stop=stop,
            )
        except MeshError as exc:
            click.secho(f"{domain} simulator: error: {exc}", fg="red", err=True)
            sys.exit(1)
        summary = ", ".join(f"{name}={n}" for name, n in sorted(published.items())) or "nothing"
        click.echo(f"{domain} simulator: published {summary}")

    run.help = (
        f"Publish the {domain} domain's share of the seeded sample story through the SDK, paced by "
        "the story clock, until --duration, --count or SIGTERM/SIGINT. Reads MESH_* settings."
    )
    return run


def main(domain: str) -> None:
    if domain not in DOMAINS:
        raise SystemExit(f"unknown source domain {domain!r}; one of {', '.join(DOMAINS)}")
    command(domain)(prog_name=f"python -m domains.{domain}.simulator")
