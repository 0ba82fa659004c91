"""Every process of the sample mesh, described for the `mesh up` supervisor.

``runnables(rate, seed)`` lists the four source-domain simulators and the three analytics
processors, each as a command line plus extra environment. The supervisor adds the MESH_*
settings (broker, registry, data dir) and starts them; every one of them stops cleanly on
SIGTERM or SIGINT. The simulators share one ``--epoch-ms`` so they tell one consistent story.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from domains.story import DOMAINS

PROCESSOR_MODULES = {
    "analytics.revenue-by-region": "domains.analytics.processors.revenue",
    "analytics.order-fulfilment-sla": "domains.analytics.processors.fulfilment_sla",
    "analytics.customer-360": "domains.analytics.processors.customer_360",
}


@dataclass(frozen=True)
class Runnable:
    """One process: a name for logs, its kind, its command line and extra environment."""

    name: str
    kind: str  # "simulator" | "processor"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def runnables(rate: float, seed: int = 42) -> list[Runnable]:
    """Simulators of orders, payments, shipping and customers, then the analytics processors.

    ``rate`` is the story's total events per second over the four domains. Processors need
    their inputs registered, which each simulator does when it starts; a processor waits for
    them, so the order of starting does not matter.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0 events per second, got {rate}")
    epoch_ms = int(time.time() * 1000)
    python = sys.executable
    simulators = [
        Runnable(
            name=f"{domain}-simulator",
            kind="simulator",
            argv=[
                python,
                "-m",
                f"domains.{domain}.simulator",
                "--rate",
                str(rate),
                "--seed",
                str(seed),
                "--epoch-ms",
                str(epoch_ms),
            ],
            env={"PYTHONUNBUFFERED": "1"},
        )
        for domain in DOMAINS
    ]
    processors = [
        Runnable(
            name=product,
            kind="processor",
            argv=[python, "-m", module, "worker", "-l", "info"],
            env={"PYTHONUNBUFFERED": "1"},
        )
        for product, module in PROCESSOR_MODULES.items()
    ]
    return [*simulators, *processors]
