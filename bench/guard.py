"""What judging and running a user statement costs, on a small store of its own.

    python bench/guard.py [--jobs 20000] [--runs 200]

Prints, as median / P95 ms over ``--runs`` runs:

- the guard alone (``exporter.query.guard.check``, the store's chdb backend as the parser: the engine's
  formatQuerySingleLine and EXPLAIN AST, then the judgement) on a small query;
- "run this user statement" end to end (``LocalQueries.run(...).reader.read_all()``: guard, routing,
  DESCRIBE, the engine) for a count over one queue, in process and through the owner's socket
  (``QueryServer`` + ``RemoteQueries``);
- the lexer (``exporter.query.lexer.lex``) over a 256 KiB statement.

The store is ``--jobs`` synthetic completions in a temp dir, made as the exporter makes them. It asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SMALL = "SELECT count() FROM jobs_archive WHERE queue = 'payments'"


def timed(fn: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fill(store, jobs: int) -> int:
    """``jobs`` synthetic completions decoded, conformed and stored as the pipeline does it."""
    from exporter.decode import decode_bodies
    from exporter.record import with_stored_times
    from exporter.schema_registry import SchemaRegistry
    from exporter.seed import synthetic_completions

    registry = SchemaRegistry.default()
    bodies = list(synthetic_completions(jobs, seed=1))
    stored = 0
    for start in range(0, len(bodies), 5000):
        decoded = decode_bodies(bodies[start:start + 5000], 1 << 20)
        records, _ = registry.conform(decoded.table)
        stored += store.insert(with_stored_times(records), f"bench-guard-{start}") or 0
    return stored


def lex_statement(size: int) -> str:
    """A SELECT of about ``size`` bytes: columns, strings, comments and quoted names, as typed."""
    part = "  queue = 'payments' /* a comment */ OR `job id` = \"x\" -- line\n"
    body = (part * (size // len(part) + 1))[:size - 64]
    return "SELECT count() FROM jobs_archive WHERE\n" + body.rsplit("\n", 1)[0] + "\n  1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="completions in the store (20,000)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per figure (200)")
    args = parser.parse_args(argv)

    from exporter.config import Config
    from exporter.query.guard import check
    from exporter.query.layer import LocalQueries
    from exporter.query.lexer import lex
    from exporter.query.remote import RemoteQueries
    from exporter.query.serve import QueryServer
    from exporter.runtime import open_warm

    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="archives-bench-guard-") as tmp:
        root = Path(tmp)
        config = Config().replace("clickhouse", url=f"chdb://{root / 'warm'}")
        store = open_warm(config)
        try:
            started = time.perf_counter()
            fill(store, args.jobs)
            count = store.backend.query_arrow("SELECT count() FROM jobs_archive").column(0)[0].as_py()
            print(f"store: {count:,} rows in jobs_archive, made in {time.perf_counter() - started:.1f} s "
                  f"({root / 'warm'})")
            backend = store.backend
            queries = LocalQueries(backend)
            answer = queries.run(SMALL).reader.read_all().column(0)[0].as_py()
            print(f"{SMALL} -> {answer:,}")

            rows.append(("guard.check (chdb parses), small query", timed(lambda: check(SMALL, backend), args.runs)))
            rows.append(("LocalQueries.run(...).read_all(), in process",
                         timed(lambda: queries.run(SMALL).reader.read_all(), args.runs)))
            server = QueryServer(queries, root / "q.sock")
            try:
                remote = RemoteQueries(root / "q.sock", "bench")
                rows.append(("RemoteQueries.run(...).read_all(), via the socket",
                             timed(lambda: remote.run(SMALL).reader.read_all(), args.runs)))
            finally:
                server.close()
            queries.close()
        finally:
            store.close()

    big = lex_statement(256 * 1024)
    tokens = sum(1 for _ in lex(big))
    rows.append((f"lexer.lex, {len(big.encode()) / 1024:.0f} KiB statement ({tokens:,} tokens)",
                 timed(lambda: sum(1 for _ in lex(big)), max(10, args.runs // 10), warmup=2)))

    width = max(len(name) for name, _ in rows)
    print(f"\n{'':{width}}  {'median ms':>10}  {'P95 ms':>10}  {'runs':>5}")
    for name, samples in rows:
        print(f"{name:{width}}  {statistics.median(samples):10.3f}  {percentile(samples, 0.95):10.3f}  "
              f"{len(samples):5d}")


if __name__ == "__main__":
    main()
