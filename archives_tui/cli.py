"""The `archives` command line: seed, export, query, status, stop.

User errors (bad config, bad SQL, bad arguments, unreachable services) print one sentence and exit
non-zero; they never show a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import UTC, datetime

import orjson

from archives_tui.output import FORMATS, render
from exporter import runtime
from exporter.config import Config, load_config
from exporter.embedded import data_dir, stop_redis
from exporter.errors import ArchivesError
from exporter.pipeline import ExportPipeline
from exporter.query import run_query
from exporter.seed import seed_stream
from exporter.status import gather


class UsageError(ArchivesError):
    """A command-line argument is invalid."""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archives", description="Long-term archive of a Redis job queue.")
    parser.add_argument("--config", help="YAML config file (default: $ARCHIVES_CONFIG, ./archives.yaml, embedded)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the exporter does")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    seed = commands.add_parser("seed", help="append synthetic job completions to the stream")
    seed.add_argument("--jobs", type=_positive(int), required=True, help="how many completions")
    seed.add_argument("--days", type=_positive(float), default=1.0, help="spread over the last D days (1)")
    seed.add_argument("--failure-rate", type=_fraction, default=0.05, help="share of non-successes (0.05)")
    seed.add_argument("--pii-rate", type=_fraction, default=0.1, help="share with e-mails/phones (0.1)")
    seed.add_argument("--seed", type=int, default=None, help="random seed (default: time-based)")

    export = commands.add_parser("export", help="run the exporter (headless)")
    export.add_argument("--once", action="store_true", help="drain new and pending entries, then exit")
    export.add_argument("-v", "--verbose", action="store_true", help="log what the exporter does")

    query = commands.add_parser("query", help="run SQL (ClickHouse dialect) over the archive")
    query.add_argument("sql", help="the statement, e.g. \"SELECT count() FROM jobs_archive\"")
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("--output", help="write to FILE instead of standard output")

    status = commands.add_parser("status", help="stream, tiers and exporter health")
    status.add_argument("--format", choices=("table", "json"), default="table")

    commands.add_parser("stop", help="stop the embedded Redis server")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](config, args)
    except ArchivesError as exc:
        print(f"archives: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_seed(config: Config, args) -> int:
    client = runtime.connect_redis(config)
    started = time.perf_counter()
    seed = args.seed if args.seed is not None else int(time.time())
    count = seed_stream(client, config.pipeline.stream_key, args.jobs, args.days, args.failure_rate,
                        args.pii_rate, seed=seed)
    elapsed = time.perf_counter() - started
    print(f"appended {count} completions to {config.pipeline.stream_key} in {elapsed:.1f}s")
    return 0


def cmd_export(config: Config, args) -> int:
    archive = runtime.Archive.open(config)
    pipeline = ExportPipeline(config, archive.redis, archive.warm, archive.cold, runtime.consumer_name(config))
    interrupts = 0

    def on_signal(signum, frame):
        nonlocal interrupts
        interrupts += 1
        pipeline.stop(abort=interrupts > 1)
        if interrupts == 1:
            print("archives: finishing the batches in hand (interrupt again to stop at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.perf_counter()
    try:
        metrics = pipeline.run(once=args.once)
    finally:
        archive.close()
    elapsed = time.perf_counter() - started
    rate = metrics.archived / elapsed if elapsed else 0.0
    print(f"archived {metrics.archived} records in {metrics.batches} batches "
          f"({metrics.dead_lettered} to {config.pipeline.stream_key}:dlq) in {elapsed:.1f}s, {rate:,.0f} records/s")
    if metrics.last_error:
        print(f"last error: {metrics.last_error}", file=sys.stderr)
    return 0


def cmd_query(config: Config, args) -> int:
    if args.format == "parquet" and not args.output and sys.stdout.isatty():
        raise UsageError("--format parquet writes binary data: add --output FILE")
    warm = runtime.open_warm(config)
    try:
        result = run_query(warm.backend, args.sql)
    finally:
        warm.backend.close()
    if args.output:
        try:
            with open(args.output, "wb") as out:
                render(result, args.format, out)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        print(f"wrote {result.num_rows} rows to {args.output}", file=sys.stderr)
    else:
        render(result, args.format, sys.stdout.buffer)
        sys.stdout.flush()
    return 0


def cmd_status(config: Config, args) -> int:
    client = runtime.connect_redis(config)
    cold = runtime.open_cold(config)
    warm, warm_error = None, None
    try:
        warm = runtime.open_warm(config)
    except ArchivesError as exc:
        warm_error = str(exc)
    try:
        info = gather(config, client, warm, cold, warm_error)
    finally:
        if warm is not None:
            warm.backend.close()
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(status_text(info))
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _tier_line(name: str, tier: dict) -> str:
    where = tier.get("backend") or tier.get("url") or ""
    if not tier.get("available"):
        return f"{name:<6} {where}\n       unavailable: {tier.get('reason')}"
    span = f"{tier['oldest']} .. {tier['newest']}" if tier.get("oldest") else "empty"
    extra = f", {tier['detail']}" if tier.get("detail") else ""
    return f"{name:<6} {where}\n       {tier['records']:,} records, {_size(tier['bytes'])}{extra}; {span}"


def status_text(info: dict) -> str:
    s = info["stream"]
    lag = f"{s['lag']:,} entries, " if s.get("lag") is not None else ""
    lines = [
        f"stream {s['stream_key']}: {s['length']:,} entries, {s.get('pending', 0):,} pending, "
        f"lag {lag}{s.get('lag_seconds') or 0:.0f}s; DLQ {s['dlq_length']:,}",
        _tier_line("warm", info["warm"]),
        _tier_line("cold", info["cold"]),
    ]
    for e in info["exporters"]:
        seen = datetime.fromtimestamp(e["updated_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if e.get(
            "updated_at") else "never"
        lines.append(f"exporter {e['consumer']}: archived {e.get('archived', 0):,}, dead-lettered "
                     f"{e.get('dead_lettered', 0):,}, last seen {seen}")
    lines.append(f"last error: {info['last_error'] or 'none'}")
    return "\n".join(lines)


def cmd_stop(config: Config, args) -> int:
    if config.redis.url:
        raise UsageError("redis.url is configured: the embedded Redis server is not in use")
    stopped = stop_redis(data_dir())
    print("stopped the embedded Redis server" if stopped else "the embedded Redis server was not running")
    return 0


COMMANDS = {"seed": cmd_seed, "export": cmd_export, "query": cmd_query, "status": cmd_status, "stop": cmd_stop}
