"""Pacing, stopping and the command line of the simulators; the runnables list for mesh up."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from domains.runnables import PROCESSOR_MODULES, runnables
from domains.simulation import CATCH_UP_MS, command, paced
from domains.story import DOMAINS, Story, StoryEvent

REPO = Path(__file__).resolve().parents[3]


def events(n: int, start_ms: int) -> list[StoryEvent]:
    return list(itertools.islice(Story(seed=5, epoch_ms=start_ms, rate=100).events(), n))


def test_paced_waits_until_each_event_is_due_and_skips_stale_ones() -> None:
    now_ms = 10_000_000.0
    sample = events(300, int(now_ms) - CATCH_UP_MS - 300)  # the first ones are stale
    waits: list[float] = []

    def clock() -> float:
        return now_ms / 1000

    def wait(seconds: float) -> bool:
        nonlocal now_ms
        waits.append(seconds)
        now_ms += seconds * 1000
        return False

    sent = list(paced(iter(sample), stop=threading.Event(), clock=clock, wait=wait))
    stale = [e for e in sample if e.emit_at_ms < 10_000_000 - CATCH_UP_MS]
    assert stale
    assert sent == [e for e in sample if e not in stale]
    assert now_ms == pytest.approx(sent[-1].emit_at_ms)  # it waited until the last was due
    assert all(w > 0 for w in waits)


def test_paced_stops_when_asked() -> None:
    stop = threading.Event()
    sample = events(20, 0)

    def wait(_seconds: float) -> bool:
        stop.set()
        return True

    sent = list(paced(iter(sample), stop=stop, clock=lambda: -1000.0, wait=wait))
    assert sent == []


def test_duration_and_count_together_are_refused() -> None:
    result = CliRunner().invoke(
        command("orders"), ["--rate", "10", "--duration", "1", "--count", "5"]
    )
    assert result.exit_code == 2
    assert "give --duration or --count, not both" in result.output


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_rate_must_be_positive(bad: str) -> None:
    result = CliRunner().invoke(command("payments"), ["--rate", bad])
    assert result.exit_code == 2
    assert "--rate" in result.output


def test_runnables_start_every_simulator_and_processor_with_one_story() -> None:
    listed = runnables(250.0, seed=9)
    simulators = [r for r in listed if r.kind == "simulator"]
    processors = [r for r in listed if r.kind == "processor"]
    assert [r.name for r in simulators] == [f"{d}-simulator" for d in DOMAINS]
    assert [r.name for r in processors] == list(PROCESSOR_MODULES)
    epochs = {r.argv[r.argv.index("--epoch-ms") + 1] for r in simulators}
    assert len(epochs) == 1  # one story clock for all four
    for runnable in simulators:
        assert runnable.argv[runnable.argv.index("--rate") + 1] == "250.0"
        assert runnable.argv[runnable.argv.index("--seed") + 1] == "9"
    for runnable in listed:
        module = runnable.argv[runnable.argv.index("-m") + 1]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
    with pytest.raises(ValueError, match="rate must be > 0"):
        runnables(0)
