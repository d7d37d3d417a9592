"""Query benchmark: every template through ``run_query`` on the warm tier, the cold tier and across both,
beside the same query on ``jobs_archive`` and in DuckDB over the same Parquet files.

    python bench/query.py [--events N] [--days D] [--warm-days W] [--repeat R] [--data DIR]
                          [--only TEMPLATE ...] [--rebuild] [--no-duckdb]

N synthetic events (bench/synthetic.py: generated as Arrow, not through Redis) over the D days before
the hour the data set was built are inserted through ``WarmStore.insert`` (all of them: the warm table's
TTL is set long enough) and written through ``ParquetStore.write_batch`` (hive-partitioned by hour).
``jobs`` is installed with its cutoff W days before the data's end, so a range older than that is
served by the cold tier and one newer by the warm tier. The data set is kept in DIR and reused while
N, D and the generator's seed match; opening it runs ``ensure_schema``, so a store built by an earlier
version is upgraded the way a user's is.

Each repetition renders the template with a different range (random offsets within the tier's window),
so ClickHouse's query-condition cache cannot answer a repeat; the first run of each case is a warm-up
and is not counted. The script prints figures (median and P95 ms); it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platformdirs
import pyarrow as pa

from bench.query_duckdb import DuckDB, open_duckdb
from bench.synthetic import Spec, batches, now_to_the_hour
from exporter.config import ColdConfig
from exporter.engine.registry import open_backend
from exporter.engine.sql import sql_string
from exporter.query import templates
from exporter.query.layer import LocalQueries
from exporter.query.run import run_query
from exporter.tiers import federation
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from exporter.units import parse_duration

DAY = timedelta(days=1)
LOOKUP = "lookup by job_id"


# -- the data set ------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """The stores of a built data set and what it holds."""

    spec: Spec
    warm: WarmStore
    cold: ParquetStore
    cutoff: datetime  # rows at or after it are served by the warm tier through `jobs`

    def close(self) -> None:
        self.warm.close()
        self.cold.close()


def manifest_of(spec: Spec) -> dict:
    return {"events": spec.events, "days": spec.days, "seed": spec.seed}


def open_dataset(root: Path, events: int, days: int, warm_days: int, rebuild: bool) -> Dataset:
    """The data set in ``root``, built first if it is missing, incomplete or of other dimensions."""
    manifest_path = root / "dataset.json"
    wanted = manifest_of(Spec(events, days, now_to_the_hour()))
    found = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    built = not rebuild and found.get("complete") and {k: found.get(k) for k in wanted} == wanted
    if not built:
        for part in ("warm", "warm.owner", "cold", "dataset.json"):
            path = root / part
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        spec = Spec(events, days, now_to_the_hour())
    else:
        spec = Spec(events, days, datetime.fromisoformat(found["end"]))
    warm = WarmStore(open_backend(f"chdb://{root / 'warm'}"), 3650 * 86400.0)  # keeps every day of the set
    started = time.perf_counter()
    warm.ensure_schema()  # on a reused set: the upgrade a user's store gets on open
    opened = time.perf_counter() - started
    cold = ParquetStore.open(ColdConfig(), f"file://{root / 'cold'}")
    if not built:
        build(spec, warm, cold)
        manifest_path.write_text(json.dumps({**manifest_of(spec), "end": spec.end.isoformat(), "complete": True}))
    else:
        print(f"reusing the data set in {root} (built for {spec.end:%Y-%m-%d %H:00} UTC); "
              f"ensure_schema took {opened:.2f} s", flush=True)
    waited = wait_for_mutations(warm)
    if waited is not None:
        print(f"  the upgrade's index build (MATERIALIZE INDEX, in the background) finished after {waited:.1f} s",
              flush=True)
    cutoff_day = (spec.end - timedelta(days=warm_days)).date()
    ttl_days = (datetime.now(UTC).date() - cutoff_day).days + 1
    federation.install(warm.backend, federation.cold_source(ColdConfig(), cold.url), ttl_days)
    return Dataset(spec, warm, cold, datetime(cutoff_day.year, cutoff_day.month, cutoff_day.day, tzinfo=UTC))


def wait_for_mutations(warm: WarmStore) -> float | None:
    """Seconds spent waiting for the engine's unfinished rebuilds of jobs_archive (None: there were none),
    so that no figure is taken while an upgrade still rewrites parts."""
    started = time.perf_counter()
    pending = "SELECT count() FROM system.mutations WHERE table = 'jobs_archive' AND NOT is_done"
    if not warm.backend.query_arrow(pending).column(0)[0].as_py():
        return None
    while warm.backend.query_arrow(pending).column(0)[0].as_py():
        time.sleep(0.5)
    return time.perf_counter() - started


def build(spec: Spec, warm: WarmStore, cold: ParquetStore) -> None:
    """Generate the rows day by day and write them through both tiers' own write paths."""
    print(f"building {spec.events:,} events over {spec.days} days ending {spec.end:%Y-%m-%d %H:00} UTC ...",
          flush=True)
    timings = {"generate": 0.0, "warm insert": 0.0, "parquet write": 0.0}
    clock = time.perf_counter()
    for batch_id, rows in batches(spec):
        timings["generate"] += time.perf_counter() - clock
        clock = time.perf_counter()
        warm.insert(rows, batch_id)
        timings["warm insert"] += time.perf_counter() - clock
        clock = time.perf_counter()
        cold.write_batch(rows, batch_id)
        timings["parquet write"] += time.perf_counter() - clock
        clock = time.perf_counter()
    print("  " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items()), flush=True)


# -- ranges ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    since: datetime
    until: datetime

    def params(self) -> dict[str, str]:
        """The template parameters for this range, as durations before now (what templates take)."""
        now = datetime.now(UTC)
        return {"since": f"{_ms(now - self.since)}ms", "until": f"{_ms(now - self.until)}ms"}


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


@dataclass
class Windows:
    """Where each tier's rows are, and random ranges of a given length inside them."""

    start: datetime  # the data set's first hour
    cutoff: datetime
    end: datetime
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    def span(self, tier: str, wanted: timedelta) -> timedelta:
        """The range length used on ``tier``: the template's default, if the tier's window leaves room
        for varying it (else 80% of the window)."""
        room = {"warm": self.end - self.cutoff, "cold": self.cutoff - self.start,
                "spanning": min(self.end - self.cutoff, self.cutoff - self.start) * 1.25}[tier]
        return min(wanted, room * 0.8)

    def pick(self, tier: str, length: timedelta) -> Range:
        """A range of ``length`` inside the tier's window, at a random place (a new one each call)."""
        if tier == "warm":
            low, high = self.cutoff, self.end - length
        elif tier == "cold":
            low, high = self.start, self.cutoff - length
        else:  # spanning: the cutoff lies inside the range, a quarter to three quarters in
            low, high = self.cutoff - length * 0.75, self.cutoff - length * 0.25
        since = low + (high - low) * self.rng.random()
        return Range(since, since + length)


def template_span(name: str) -> timedelta:
    default = templates.TEMPLATES[name].defaults["since"] if name in templates.TEMPLATES else "7d"
    return timedelta(seconds=parse_duration(default))


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """One column of the table for one template: a query run ``repeat`` times with fresh parameters."""

    label: str
    run: Callable[[], int]  # runs once with fresh parameters; returns result rows
    times: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    cpu: list[float] = field(default_factory=list)  # this process's CPU ms (every engine thread), per run

    def once(self) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        rows = self.run()
        self.times.append((time.perf_counter() - started) * 1000)
        self.cpu.append((time.process_time() - cpu) * 1000)
        self.rows.append(rows)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def on_table(sql: str, table: str) -> str:
    """The statement with ``jobs`` read as ``table`` (jobs_archive, jobs_cold keep their names)."""
    return re.sub(r"\bjobs\b", table, sql)


def template_cases(name: str, data: Dataset, windows: Windows, duck: DuckDB | None) -> tuple[list[Case], str]:
    """Cases for one template, and a note of the range lengths used on each tier."""
    queries = LocalQueries(data.warm.backend)
    extra = {"min_jobs": "100"} if name == "worker-performance" else {}
    spans = {tier: windows.span(tier, template_span(name)) for tier in ("warm", "cold", "spanning")}
    last: dict[str, Range] = {}

    def through(tier: str, table: str = "jobs") -> Callable[[], int]:
        def run() -> int:
            chosen = last[tier] = windows.pick(tier, spans[tier])
            return run_query(queries, on_table(templates.render(name, {**chosen.params(), **extra}), table)).num_rows
        return run

    def duckdb_cold() -> int:
        chosen = windows.pick("cold", spans["cold"])
        return duck.run(name, chosen.since, chosen.until)

    cases = [Case("jobs warm", through("warm")), Case("jobs_archive", through("warm", "jobs_archive")),
             Case("jobs cold", through("cold")), Case("spanning", through("spanning"))]
    if duck is not None:
        cases.append(Case("DuckDB cold", duckdb_cold))
    note = ", ".join(f"{tier} {_days(span)}" for tier, span in spans.items())
    return cases, note


def lookup_cases(data: Dataset, windows: Windows, duck: DuckDB | None) -> tuple[list[Case], str]:
    """Lookups of one job by id: in jobs_archive, through `jobs` bounded to a tier's window, through
    `jobs` unbounded (the whole archive, as ``archives find`` asks), and in DuckDB over the files."""
    queries = LocalQueries(data.warm.backend)
    rng = random.Random(5)
    ids = {tier: sample_ids(data, tier) for tier in ("warm", "cold")}
    warm_range, cold_range = Range(data.cutoff, data.spec.end), Range(data.spec.start, data.cutoff)

    def lookup(table: str, tier: str, bounded: Range | None) -> Callable[[], int]:
        def run() -> int:
            where = f"job_id = {sql_string(rng.choice(ids[tier]))}"
            if bounded is not None:
                where += " AND " + " AND ".join(f"enqueue_time {op} now64(3) - toIntervalMillisecond({value[:-2]})"
                                                for op, value in zip((">=", "<"), bounded.params().values(),
                                                                     strict=True))
            return run_query(queries, f"SELECT * FROM {table} WHERE {where}").num_rows
        return run

    def duckdb_cold() -> int:
        return duck.run(LOOKUP, cold_range.since, cold_range.until, job_id=rng.choice(ids["cold"]))

    cases = [Case("jobs warm", lookup("jobs", "warm", warm_range)),
             Case("jobs_archive", lookup("jobs_archive", "warm", None)),
             Case("jobs cold", lookup("jobs", "cold", cold_range)),
             Case("spanning", lookup("jobs", "cold", None))]
    if duck is not None:
        cases.append(Case("DuckDB cold", duckdb_cold))
    return cases, "warm/cold: bounded to the tier's window; spanning: no time bound (the whole archive)"


def sample_ids(data: Dataset, tier: str, count: int = 500) -> list[str]:
    side = ">=" if tier == "warm" else "<"
    cutoff = f"toDateTime64({sql_string(data.cutoff.strftime('%Y-%m-%d %H:%M:%S'))}, 3, 'UTC')"
    table = data.warm.backend.query_arrow(f"SELECT job_id FROM jobs_archive WHERE enqueue_time {side} {cutoff} "
                                          f"ORDER BY cityHash64(job_id) LIMIT {count}")
    return table.column(0).to_pylist()


def measure(cases: list[Case], repeat: int) -> None:
    """A warm-up run of each case, then ``repeat`` rounds, the cases interleaved within each round."""
    for case in cases:
        case.run()
    for _ in range(repeat):
        for case in cases:
            case.once()


# -- report ------------------------------------------------------------------------------------------


def _days(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f}h" if hours < 48 else f"{hours / 24:.0f}d"


def header(labels: list[str]) -> str:
    cells = "".join(f" {label:>16}" for label in labels)
    return f"{'template':<20}{cells} {'jobs/archive':>12} {'cold/DuckDB':>11}"


def row(name: str, cases: list[Case], labels: list[str]) -> str:
    by_label = {case.label: case for case in cases}
    cells = "".join(f" {f'{by_label[label].median:.0f} / {by_label[label].p95:.0f}':>16}" for label in labels)
    ratio = by_label["jobs warm"].median / by_label["jobs_archive"].median
    duck = by_label.get("DuckDB cold")
    versus = f"{by_label['jobs cold'].median / duck.median:.2f}" if duck else "-"
    return f"{name:<20}{cells} {ratio:>12.2f} {versus:>11}"


def targets(measured: dict[str, dict[str, Case]]) -> str:
    """The issue's targets against the figures: met or not, with the figure that decides."""
    lines = ["targets (P95 unless said):"]

    def check(label: str, value: float, limit: float, unit: str = " ms") -> None:
        figure = f"{value:.2f}{unit}" if unit == "x" else f"{value:.0f}{unit}"
        lines.append(f"  {'met    ' if value <= limit else 'NOT met'} {label}: {figure} (target {limit:g}{unit})")

    for name, cases in measured.items():
        limit = 50 if name == LOOKUP else 100
        check(f"{name} on the warm tier (jobs_archive)", cases["jobs_archive"].p95, limit)
        check(f"{name} through jobs, warm-only range", cases["jobs warm"].p95, limit)
        check(f"{name}: jobs / jobs_archive, warm-only, median", cases["jobs warm"].median
              / cases["jobs_archive"].median, 1.2, "x")
        if "DuckDB cold" in cases:
            check(f"{name}: cold tier / DuckDB, median (aim 1.0, worst 1.5)", cases["jobs cold"].median
                  / cases["DuckDB cold"].median, 1.5, "x")
    return "\n".join(lines)


def describe(data: Dataset, duck: DuckDB | None) -> str:
    import chdb

    backend = data.warm.backend
    version = backend.query_arrow("SELECT version() AS v").column(0)[0].as_py()
    parts = backend.query_arrow(
        "SELECT toUInt64(sum(rows)) AS rows, count() AS parts, toUInt64(sum(bytes_on_disk)) AS bytes FROM system.parts "
        "WHERE active AND database = currentDatabase() AND table = 'jobs_archive'").to_pylist()[0]
    extras = backend.query_arrow(
        "SELECT arrayStringConcat(groupArray(name), ', ') AS names FROM (SELECT name FROM system.projections "
        "WHERE database = currentDatabase() AND table = 'jobs_archive' UNION ALL SELECT name FROM "
        "system.data_skipping_indices WHERE database = currentDatabase() AND table = 'jobs_archive')"
    ).column(0)[0].as_py()
    files = data.cold.files()
    size = sum(int(info["size"]) for info in files)
    duck_text = f"DuckDB {duck.version}" if duck else "no DuckDB"
    return (f"chdb {chdb.__version__} (ClickHouse {version}), {duck_text}, pyarrow {pa.__version__}, "
            f"Python {platform.python_version()}\n"
            f"warm: jobs_archive {parts['rows']:,} rows in {parts['parts']} parts, {parts['bytes'] / 2**20:,.0f} MiB; "
            f"projections and skip indexes: {extras or 'none'}\n"
            f"cold: {len(files):,} Parquet files, {size / 2**20:,.0f} MiB; data {data.spec.start:%Y-%m-%d %H:00} to "
            f"{data.spec.end:%Y-%m-%d %H:00} UTC, warm cutoff {data.cutoff:%Y-%m-%d} 00:00 UTC")


def run(args: argparse.Namespace) -> None:
    wall = time.perf_counter()
    root = Path(args.data or Path(platformdirs.user_cache_dir("archives")) / f"bench-query-{args.events}")
    data = open_dataset(root, args.events, args.days, args.warm_days, args.rebuild)
    duck = None if args.no_duckdb else open_duckdb(data.cold.jobs_root)
    try:
        print(describe(data, duck), flush=True)
        print(f"load average before {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
              "(other processes' load inflates wall times; CPU ms below do not depend on it)", flush=True)
        windows = Windows(data.spec.start, data.cutoff, data.spec.end)
        names = args.only or [*templates.TEMPLATES, LOOKUP]
        labels = ["jobs warm", "jobs_archive", "jobs cold", "spanning"] + (["DuckDB cold"] if duck else [])
        print(f"\nmedian / P95 ms over {args.repeat} runs each, through run_query (DuckDB: its own connection)")
        print(header(labels))
        print("-" * len(header(labels)), flush=True)
        notes = []
        measured: dict[str, dict[str, Case]] = {}
        for name in names:
            cases, note = (lookup_cases(data, windows, duck) if name == LOOKUP
                           else template_cases(name, data, windows, duck))
            measure(cases, args.repeat)
            measured[name] = {case.label: case for case in cases}
            print(row(name, cases, labels), flush=True)
            notes.append(f"  {name}: {note}\n    result rows (last run): "
                         + ", ".join(f"{case.label} {case.rows[-1]}" for case in cases)
                         + "\n    median CPU ms (this process, all threads): "
                         + ", ".join(f"{case.label} {statistics.median(case.cpu):.0f}" for case in cases))
        print("\nranges per tier:\n" + "\n".join(notes))
        print("\n" + targets(measured))
        print(f"\nwall time {time.perf_counter() - wall:.0f} s; load average at the end "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    finally:
        if duck is not None:
            duck.close()
        data.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the data set (default 10,000,000)")
    parser.add_argument("--days", type=int, default=60, help="days the events span (default 60)")
    parser.add_argument("--warm-days", type=int, default=40,
                        help="days before the data's end that `jobs` serves from the warm tier (default 40)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per case (default 20)")
    parser.add_argument("--data", help="directory of the data set, reused across runs "
                                       "(default: the user cache directory, per event count)")
    parser.add_argument("--only", nargs="+", choices=[*templates.TEMPLATES, LOOKUP], metavar="TEMPLATE",
                        help="measure only these templates ('lookup by job_id' for the lookup)")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again even if it matches")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB column")
    args = parser.parse_args(argv)
    if args.events < 1000 or not 2 <= args.warm_days < args.days or args.repeat < 1:
        parser.error("--events must be >= 1000, --warm-days between 2 and --days - 1, --repeat >= 1")
    run(args)


if __name__ == "__main__":
    main()
