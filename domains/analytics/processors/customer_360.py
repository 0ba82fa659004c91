"""analytics.customer-360: lifetime orders, spend, last order and engagement per customer.

Run one worker with ``python -m domains.analytics.processors.customer_360 worker -l info``.

Only ``region``, ``segment`` and ``updated_at`` are read from the ``pii`` product
customers.customer-profile: name, email and phone are not in its ``reads``, so they never
reach state or output, which is why the output is classified ``internal`` (declared field by
field in the descriptor's ``field_lineage``). Orders and engagement events count once each,
despite duplicates that arrive within an hour of the first copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh_stream.processing import Dedup, Event, Input, Processor, run
from mesh_stream.processing.codec import cents_decimal, decimal_cents

PRODUCT = "analytics.customer-360"
PROFILE = "customers.customer-profile"
ENGAGEMENT = "customers.engagement-event"
PLACED = "orders.order-placed"
#: The only profile fields that leave the customers domain through this processor.
PROFILE_READS = ("customer_id", "region", "segment", "updated_at")


def by_customer(record: Mapping[str, Any]) -> str:
    return str(record["customer_id"])


def add(customer: dict[str, Any], event: Event) -> None:
    """Fold one profile version, engagement event or order into a customer."""
    if not customer:
        customer.update(lifetime_orders=0, spend_cents=0, engagement_count=0)
    fields = event.fields
    if event.input == PROFILE:
        current = customer.get("profile")
        if current is None or fields["updated_at"] >= current["updated_at"]:
            customer["profile"] = {name: fields[name] for name in PROFILE_READS[1:]}
    elif event.input == ENGAGEMENT:
        customer["engagement_count"] += 1
    else:
        customer["lifetime_orders"] += 1
        customer["spend_cents"] += decimal_cents(fields["total_amount"])
        # The same answer whichever order the orders arrive in (mesh verify checks it).
        customer["currency"] = min(customer.get("currency", fields["currency"]), fields["currency"])
        last = customer.get("last_order_at")
        placed = fields["placed_at"]
        customer["last_order_at"] = placed if last is None else max(last, placed)


def customer_record(customer_id: str, customer: Mapping[str, Any]) -> dict[str, Any]:
    profile = customer.get("profile") or {}
    return {
        "customer_id": customer_id,
        "region": profile.get("region"),
        "segment": profile.get("segment"),
        "lifetime_orders": customer["lifetime_orders"],
        "lifetime_spend": cents_decimal(customer["spend_cents"]),
        "last_order_at": customer.get("last_order_at"),
        "engagement_count": customer["engagement_count"],
        "currency": customer.get("currency", "EUR"),
    }


PROCESSOR = Processor(
    output=PRODUCT,
    inputs=(
        Input(PROFILE, key=by_customer, reads=PROFILE_READS),
        Input(ENGAGEMENT, key=by_customer, reads=("customer_id", "event_id")),
        Input(
            PLACED,
            key=by_customer,
            reads=("customer_id", "event_id", "total_amount", "currency", "placed_at"),
        ),
    ),
    apply=add,
    emit=customer_record,
    dedup=Dedup(field="event_id", horizon_ms=3_600_000),
    description="lifetime orders, spend, last order and engagement per customer",
)

if __name__ == "__main__":
    run(PROCESSOR)
