"""The SDK benchmark's cases by letter, and the rule a choice of cases must meet.

One home for the rule: ``mesh bench --cases`` checks it while parsing its options (a usage
error before any broker starts), and :func:`mesh_stream.bench.run.run_benchmarks` checks it
again for callers that skip the CLI. Light on purpose (no Kafka, no Avro imports), so the
CLI can import it before the bench extra is checked.
"""

from __future__ import annotations

WRITE_CASES = ("a", "b", "c", "d", "e", "j")
READ_CASES = ("f", "g", "h", "i")
ALL_CASES = "abcdefghij"


def read_source(cases: str) -> str:
    """The write case whose topic the read cases read: (d), else the first write case."""
    return "d" if "d" in cases else next((c for c in cases if c in WRITE_CASES), "d")


def cases_problem(cases: str) -> str | None:
    """What is wrong with running ``cases`` (letters, in the order they run), or None.

    Read cases read the topic their write case filled in the first round, so that write
    case must be in the run and come before them; each letter is given once (a second one
    would be folded into the first's median).
    """
    if not cases.strip():
        return f"{cases!r} is empty; use letters a-j, e.g. {ALL_CASES}"
    unknown = sorted(set(cases) - set(ALL_CASES))
    if unknown:
        return f"unknown case(s) {unknown}; use letters a-j"
    twice = sorted({case for case in cases if cases.count(case) > 1})
    if twice:
        return f"{cases!r} names case(s) {twice} more than once; name each case once"
    reads = [case for case in cases if case in READ_CASES]
    if not reads:
        return None
    source = read_source(cases)
    if source not in cases:
        return (
            f"read case(s) {''.join(reads)} need a write case (d) in the same run to fill the "
            f"topic they read; add it, e.g. d{cases}"
        )
    if cases.index(source) > cases.index(reads[0]):
        rest = cases.replace(source, "")
        return (
            f"read case {reads[0]} comes before {source}, the write case that fills the topic "
            f"it reads; put {source} first, e.g. {source}{rest}"
        )
    return None
