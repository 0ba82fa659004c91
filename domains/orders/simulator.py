"""Simulator of domain `orders`: `python -m domains.orders.simulator --rate EVENTS_PER_S`.

See :mod:`domains.simulation` for the options and :mod:`domains.story` for the story.
"""

from __future__ import annotations

from domains.simulation import main

if __name__ == "__main__":
    main("orders")
