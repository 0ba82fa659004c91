"""Simulator of domain `customers`: `python -m domains.customers.simulator --rate EVENTS_PER_S`.

See :mod:`domains.simulation` for the options and :mod:`domains.story` for the story.
"""

from __future__ import annotations

from domains.simulation import main

if __name__ == "__main__":
    main("customers")
