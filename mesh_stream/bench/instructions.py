"""The cost of quality rules counted in instructions: cases (d) and (j) under valgrind.

CPU time on a shared machine moves from run to run by as much as the rules cost (case (d)
alone varies by half), so `mesh bench --instructions` counts what the CPU executes instead:
each case runs under ``valgrind --tool=callgrind`` twice, with ``records`` and with
three times as many timed records after the same warm-up, and the difference divided by the
extra records is the instructions per record, free of start-up, imports and
the warm-up. The count covers every thread of the process (librdkafka's too), and the main
thread alone (where the publisher and the rules run) is reported beside it. Instructions do
not see cache misses or the clock, so this complements the timed cases, it does not replace
them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mesh_stream.bench.sdk_bench import LABELS, Config
from mesh_stream.errors import ConfigurationError

#: Cases counted: the publisher without rules and with the 3 benchmark rules.
CASES = ("d", "j")
#: Timed records of the shorter run (the longer runs three times as many).
RECORDS = 10_000
#: Rules may add at most this share of instructions per record (issue 14: 25 %).
TARGET = 1.25
_TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.MULTILINE)


def find_valgrind() -> str:
    """The valgrind executable, or a ConfigurationError saying how to get it."""
    found = shutil.which("valgrind")
    if found is None:
        raise ConfigurationError(
            "mesh bench --instructions needs valgrind on PATH (Debian/Ubuntu: "
            "apt-get install valgrind)"
        )
    return found


def thread_totals(folder: Path) -> list[int]:
    """Instructions per thread from callgrind's ``--separate-threads`` files, main thread
    first (callgrind numbers the files ``-01``, ``-02``... in thread creation order)."""
    files = sorted(folder.glob("callgrind.out-*"), key=lambda path: path.name)
    counts = []
    for path in files:
        found = _TOTALS.search(path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            raise RuntimeError(f"no instruction total in callgrind output {path}")
        counts.append(int(found.group(1)))
    if not counts:
        raise RuntimeError(f"callgrind wrote no output in {folder}")
    return counts


def count_case(valgrind: str, case: str, config: Config) -> tuple[int, int]:
    """(whole process, main thread) instructions of one run of ``case`` under callgrind."""
    with tempfile.TemporaryDirectory(prefix="mesh-bench-callgrind-") as folder:
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={folder}/callgrind.out",
                sys.executable,
                "-m",
                "mesh_stream.bench.sdk_bench",
                case,
                json.dumps(asdict(config)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"case {case} under valgrind failed:\n{done.stderr[-3000:]}")
        counts = thread_totals(Path(folder))
    return sum(counts), counts[0]


def per_record(short: tuple[int, int], long: tuple[int, int], extra: int) -> tuple[float, float]:
    """Instructions per record (whole process, main thread) from a short and a long run."""
    return (long[0] - short[0]) / extra, (long[1] - short[1]) / extra


def count_rules_cost(
    config: Config,
    make_product: Callable[[str], str],
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Instructions per record of (d) and (j), and their ratio against :data:`TARGET`.

    ``make_product(name)`` creates the topic of a fresh product named ``name`` and returns
    it: every run writes a product of its own, as the timed cases do.
    """
    valgrind = find_valgrind()
    records = config.records
    cases: dict[str, dict[str, Any]] = {}
    for case in CASES:
        runs = []
        for size in (records, 3 * records):
            product = make_product(f"{config.product}-{case}-{size}")
            progress(f"({case}) {LABELS[case]}: {size:,} records under callgrind ...")
            runs.append(count_case(valgrind, case, replace(config, records=size, product=product)))
        whole, main = per_record(runs[0], runs[1], 2 * records)
        cases[case] = {
            "label": LABELS[case],
            "instructions_per_record": round(whole),
            "main_thread_instructions_per_record": round(main),
        }
    whole_ratio = cases["j"]["instructions_per_record"] / cases["d"]["instructions_per_record"]
    main_ratio = (
        cases["j"]["main_thread_instructions_per_record"]
        / cases["d"]["main_thread_instructions_per_record"]
    )
    return {
        "records": [records, 3 * records],
        "warmup": config.warmup,
        "cases": cases,
        "ratio": "j/d",
        "instructions_ratio": round(whole_ratio, 3),
        "main_thread_instructions_ratio": round(main_ratio, 3),
        "added_instructions_per_record": cases["j"]["instructions_per_record"]
        - cases["d"]["instructions_per_record"],
        "target_at_most": TARGET,
        "met": whole_ratio <= TARGET,
    }


def render_instructions(result: dict[str, Any]) -> str:
    """The instruction counts as a table and the verdict line."""
    short, long = result["records"]
    lines = [
        f"instructions per record under valgrind (callgrind): ({long:,} - {short:,} timed "
        f"records) / {long - short:,}, after {result['warmup']:,} warm-up records",
        "",
        f"{'case':<5}{'what':<50}{'whole process':>16}{'main thread':>14}",
    ]
    for case, figures in result["cases"].items():
        lines.append(
            f"({case}) {figures['label']:<50}{figures['instructions_per_record']:>14,}"
            f"{figures['main_thread_instructions_per_record']:>14,}"
        )
    verdict = "met" if result["met"] else "MISSED"
    lines += [
        "",
        f"rules: instructions per record with 3 CEL rules / without (j/d) "
        f"{result['instructions_ratio']:.2f} (+{result['added_instructions_per_record']:,}; "
        f"main thread {result['main_thread_instructions_ratio']:.2f}), "
        f"target <={result['target_at_most']}  {verdict}",
    ]
    return "\n".join(lines)
