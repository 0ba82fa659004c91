"""What the browser tests share: the sample mesh they register, and page helpers.

See tests/browser/conftest.py for the fixtures built from it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mesh_stream.health import Figure, FigureName, ProductHealth, Status
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.settings import MeshSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AXE_SCRIPT = REPO_ROOT / "tools" / "vendor" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
#: Flags that keep Chromium from calling home (this machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE_DOMAINS = ("orders", "payments", "shipping", "customers", "analytics")
TOKENS = {"admin": "admin-secret", **{d: f"{d}-secret" for d in SAMPLE_DOMAINS}}

DIFF_PRODUCT = "orders.order-placed"
DIFF_FIELD = "sales_channel"
SAMPLE_PRODUCT = "customers.customer-profile"
SAMPLE_RECORDS = [
    {
        "customer_id": f"cust-{i:03d}",
        "full_name": f"Customer Number {i}",
        "email": f"customer{i}@example.org",
        "phone": None if i % 2 else f"+44 20 7946 {i:04d}",
        "region": ("eu-west", "us-east", "ap-south")[i % 3],
        "segment": ("NEW", "REGULAR", "VIP")[i % 3],
        "updated_at": 1_764_000_000_000 + i * 60_000,
    }
    for i in range(12)
]
HEALTH_PRODUCTS = ("analytics.revenue-by-region", "orders.order-placed", SAMPLE_PRODUCT)


@dataclass
class PortalMesh:
    """Where a portal under test answers, and who may sign in to it."""

    url: str
    tokens: dict[str, str]
    products: list[str]
    read_requires_auth: bool
    bootstrap_servers: str
    extra: dict[str, Any] = field(default_factory=dict)

    def token(self, principal: str) -> str:
        return self.tokens[principal]


def portal_settings(bootstrap: str, session: str, *, read_auth: bool) -> MeshSettings:
    return MeshSettings(
        bootstrap_servers=bootstrap,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in TOKENS.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-portal-{session}",
        registry_writer_id=f"mesh-registry-portal-{session}",
        health_topic=f"_mesh_product_health-portal-{session}",
        alerts_topic=f"_mesh_product_alerts-portal-{session}",
        registry_read_requires_auth=read_auth,
        registry_session_secret=SecretStr(f"portal-tests-{session}"),
    )


def register_sample_mesh(
    url: str, connection: KafkaConnection | None, *, leave_out: Collection[str] = ()
) -> list[str]:
    """Register the sample mesh (sources first, compatibility levels set) and a second
    version of ``DIFF_PRODUCT``; create the product topics when ``connection`` is given.
    Products in ``leave_out`` stay unregistered (nothing may be built from them)."""
    from mesh_stream import registration
    from mesh_stream.project import load_project
    from mesh_stream.registry.client import RegistryClient
    from mesh_stream.up.plan import topological

    project = load_project(REPO_ROOT)
    products = [p for p in topological(project.descriptors()) if p.name not in leave_out]
    if connection is not None:
        registration.ensure_topics(connection, products)
    with RegistryClient(url, principal="admin", token=TOKENS["admin"]) as client:
        for product in products:
            registration.register_product(
                client, product, REPO_ROOT, wait_for_inputs=0, set_level=True
            )
        changed = next(p for p in products if p.name == DIFF_PRODUCT)
        schema = json.loads(registration.schema_text(changed, REPO_ROOT))
        second = copy.deepcopy(schema)
        second["fields"].append(
            {
                "name": DIFF_FIELD,
                "type": ["null", "string"],
                "default": None,
                "doc": "Sales channel the order came through (web, app, store), when known.",
            }
        )
        registration.register_value_schema(client, changed, json.dumps(second))
    return [p.name for p in products]


def publish_sample_records(url: str, bootstrap: str) -> None:
    from mesh_stream.producer import open_publisher
    from mesh_stream.registry.client import RegistryClient

    settings = MeshSettings(bootstrap_servers=bootstrap, registry_url=url)
    with (
        RegistryClient(url, principal="customers", token=TOKENS["customers"]) as client,
        open_publisher(SAMPLE_PRODUCT, settings=settings, registry=client, root=REPO_ROOT) as out,
    ):
        for record in SAMPLE_RECORDS:
            out.publish(record)
        out.flush()


def publish_health(connection: KafkaConnection, settings: MeshSettings) -> None:
    from mesh_stream.monitor.publish import Publisher, ensure_monitor_topics

    ensure_monitor_topics(connection, settings.health_topic, settings.alerts_topic)
    now = int(time.time() * 1000)
    start = now - 3 * 3600_000
    healths = []
    for product in HEALTH_PRODUCTS:
        for step in range(19):
            at = start + step * 600_000
            freshness = 5.0 + (step * 7) % 23
            volume = 120.0 + (step * 37) % 90
            healths.append(
                ProductHealth(
                    product=product,
                    measured_at_ms=at,
                    status=Status.OK,
                    reason="every SLO met",
                    since_ms=start,
                    figures=(
                        Figure(
                            name=FigureName.FRESHNESS_SECONDS,
                            value=freshness,
                            slo=60.0,
                            status=Status.OK,
                            reason=f"newest record {freshness:.0f} s old",
                        ),
                        Figure(
                            name=FigureName.RECORDS_PER_MINUTE,
                            value=volume,
                            status=Status.OK,
                            reason=f"{volume:.0f} records in the last minute",
                        ),
                    ),
                    monitor="portal-tests",
                )
            )
    publisher = Publisher(connection, settings.health_topic, settings.alerts_topic)
    try:
        publisher.publish(healths, [])
    finally:
        publisher.close()


def sign_in(page: Any, portal: PortalMesh, principal: str, *, next_path: str = "") -> None:
    """Sign in through the portal's own form as ``principal``."""
    target = f"{portal.url}/ui/login" + (f"?next={next_path}" if next_path else "")
    page.goto(target)
    page.fill("#token", portal.token(principal))
    with page.expect_navigation():
        page.click("form[action='/ui/login'] button[type=submit]")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    assert AXE_SCRIPT.exists(), f"{AXE_SCRIPT} is missing: run `make browser` (npm ci)"
    # Evaluated through the DevTools protocol, not as a <script> tag: the portal's CSP
    # refuses inline scripts, and the check must run against the real policy.
    page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "targets": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
