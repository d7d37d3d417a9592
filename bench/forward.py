"""What a forwarded query costs: the same small queries direct (this process owns the embedded store)
and forwarded (a running `archives export` owns it and answers over its socket).

    python bench/forward.py [--events N] [--repeats R]

On the embedded defaults in a temporary XDG data home: N events are seeded and exported once; then each
query runs R times through ``run_query`` (guard, DESCRIBE for Enum columns, the query: what `archives
query` does) with the store opened here, then R times through the exporter's socket while `archives
export` runs. The 10-row query moves its OFFSET each time so no result cache answers it. Last, the
whole `archives query` command, a fresh process each time, both ways. Prints median and P95 in ms; it
asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
QUERIES: dict[str, Callable[[int], str]] = {
    "SELECT 1": lambda i: "SELECT 1",
    "10 rows of jobs_archive": lambda i: ("SELECT job_id, queue, outcome, enqueue_time, retries FROM jobs_archive "
                                          f"ORDER BY enqueue_time DESC LIMIT 10 OFFSET {i % 1000}"),
}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(run: Callable[[int], object], repeats: int, warmup: int = 5) -> list[float]:
    for i in range(warmup):
        run(i)
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise SystemExit(f"archives {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def measure(label: str, queries, repeats: int) -> dict[str, list[float]]:
    from exporter.query.run import run_query

    results = {}
    for name, sql in QUERIES.items():
        results[name] = timed(lambda i, sql=sql: run_query(queries, sql(i)), repeats)
        median, p95 = percentiles(results[name])
        print(f"  {label:<10} {name:<26} median {median:7.2f}  P95 {p95:7.2f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--cli-repeats", type=int, default=5)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="archives-forward-"))
    os.environ["XDG_DATA_HOME"] = str(home)  # before anything asks where the data directory is
    os.environ.pop("ARCHIVES_CONFIG", None)
    config_file = home / "archives.yaml"
    config_file.write_text("pipeline:\n  flush_interval: 200ms\n  consumer_name: bench-forward\n")
    exporter = None
    try:
        from exporter import runtime
        from exporter.config import load_config
        from exporter.engine.wire import socket_path as query_socket
        from exporter.query.remote import RemoteQueries

        config = load_config(str(config_file))
        print(f"seeding and exporting {args.events:,} events under {home} ...")
        cli(config_file, "seed", "--jobs", str(args.events), "--seed", "1")
        cli(config_file, "export", "--once")

        print(f"run_query, ms over {args.repeats} runs each (after 5 warm-up runs):")
        with runtime.query_layer(config) as queries:
            assert not isinstance(queries, RemoteQueries)
            direct = measure("direct", queries, args.repeats)
        cli_direct = timed(lambda i: cli(config_file, "query", "SELECT 1"), args.cli_repeats, warmup=1)

        exporter = subprocess.Popen([sys.executable, "-m", "archives_tui", "--config", str(config_file), "export"],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        socket_path = query_socket(runtime.warm_dir(config))
        deadline = time.monotonic() + 60
        while RemoteQueries.reach(socket_path) is None:
            if time.monotonic() > deadline or exporter.poll() is not None:
                raise SystemExit("the exporter did not answer on its socket")
            time.sleep(0.1)
        reach = timed(lambda i: RemoteQueries.reach(socket_path), args.repeats)
        with runtime.query_layer(config) as queries:
            assert isinstance(queries, RemoteQueries)
            forwarded = measure("forwarded", queries, args.repeats)
        cli_forwarded = timed(lambda i: cli(config_file, "query", "SELECT 1"), args.cli_repeats, warmup=1)

        print("\nwhat forwarding adds (median forwarded - median direct, ms):")
        for name in QUERIES:
            (dm, dp), (fm, fp) = percentiles(direct[name]), percentiles(forwarded[name])
            print(f"  {name:<26} +{fm - dm:5.2f} median, +{fp - dp:5.2f} P95 "
                  f"(direct {dm:.2f}/{dp:.2f}, forwarded {fm:.2f}/{fp:.2f})")
        median, p95 = percentiles(reach)
        print(f"  finding the owner (query_layer's ping): median {median:.2f}, P95 {p95:.2f}")
        print(f"\n`archives query \"SELECT 1\"`, whole command, ms over {args.cli_repeats} runs:")
        for label, samples in (("opens the store", cli_direct), ("through the exporter", cli_forwarded)):
            median, p95 = percentiles(samples)
            print(f"  {label:<22} median {median:7.0f}  P95 {p95:7.0f}")
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(60)
        cli(config_file, "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
