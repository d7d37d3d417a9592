"""The `archives` command line: seed, export, query, status, stop.

User errors (bad config, bad SQL, bad arguments, unreachable services) print one sentence and exit
non-zero; they never show a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import redis

from archives_tui.render import FORMATS, human_size, render, visible
from archives_tui.retention_view import retention_text, run_text
from archives_tui.status_view import status_text
from exporter import runtime
from exporter.config import THEMES, Config, load_config
from exporter.dead_letters import dead_letters, dlq_key, replay
from exporter.embedded import data_dir, stop_redis
from exporter.engine.interface import Limits
from exporter.errors import ArchivesError, StoreBusyError
from exporter.maintenance.retention import TIERS as RETENTION_TIERS
from exporter.maintenance.retention import RetentionManager
from exporter.query import templates, writers
from exporter.query.history import QueryHistory
from exporter.query.run import Execution, QueryResult, Taken
from exporter.redact import RedactingFilter, redact
from exporter.status import collect


class UsageError(ArchivesError):
    """A command-line argument is invalid."""


class QueryInterrupted(Exception):
    """Ctrl-C during a query, after the engine was told to stop."""


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


def _version() -> str:
    try:
        return metadata.version("archives")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archives", description="Long-term archive of a Redis job queue.")
    parser.add_argument("--config", help="YAML config file (default: $ARCHIVES_CONFIG, ./archives.yaml, embedded)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the exporter does")
    parser.add_argument("--version", action="version", version=f"archives {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    seed = commands.add_parser("seed", help="append synthetic job completions to the stream")
    seed.add_argument("--jobs", type=_positive(int), required=True, help="how many completions")
    seed.add_argument("--days", type=_positive(float), default=1.0, help="spread over the last D days (1)")
    seed.add_argument("--failure-rate", type=_fraction, default=0.05, help="share of non-successes (0.05)")
    seed.add_argument("--pii-rate", type=_fraction, default=0.1, help="share with e-mails/phones (0.1)")
    seed.add_argument("--seed", type=int, default=None, help="random seed (default: time-based)")

    tui = commands.add_parser("tui", help="the dashboard, with the exporter running inside (the default command)")
    tui.add_argument("--demo", action="store_true", help="also append synthetic completions, so data flows at once")
    tui.add_argument("--theme", choices=THEMES, help="dark, light or high-contrast (default: ui.theme)")
    tui.add_argument("--demo-on-configured-redis", action="store_true",
                     help="let --demo write into a configured (not embedded) Redis stream")
    export = commands.add_parser("export", help="run the exporter (headless)")
    export.add_argument("--once", action="store_true", help="drain new and pending entries, then exit")
    export.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log what the exporter does")

    query = commands.add_parser("query", help="run SQL (ClickHouse dialect) over the archive")
    query.add_argument("sql", nargs="?", help="the statement, e.g. \"SELECT count() FROM jobs\"")
    query.add_argument("-f", "--file", help="read the statement from FILE ('-' for standard input)")
    query.add_argument("--format", choices=FORMATS, default="table")
    query.add_argument("--output", help="write to FILE instead of standard output")
    query.add_argument("--limit", type=_positive(int), help="return at most N rows (says so when it cuts)")
    query.add_argument("--explain", action="store_true", help="show the plan, indexes and estimate; run nothing")
    query.add_argument("--save-as", metavar="NAME", help="also keep the statement as the favorite NAME")
    query.add_argument("--template", help="run a template (see 'archives templates') instead of SQL")
    query.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a template parameter: since=7d, until=1d, queue=..., tenant=...")

    templates = commands.add_parser("templates", help="the query templates and their parameters")
    templates.add_argument("--format", choices=("table", "json"), default="table")

    history = commands.add_parser("history", help="queries run before, and saved favorites")
    history.add_argument("--search", help="only entries whose SQL (or error, or favorite name) holds TEXT")
    history.add_argument("--favorites", action="store_true", help="list the saved favorites instead")
    history.add_argument("--limit", type=_positive(int), default=20, help="newest N entries (20)")
    history.add_argument("--purge", action="store_true", help="forget the whole history (favorites stay)")
    history.add_argument("--format", choices=("table", "json"), default="table")

    status = commands.add_parser("status", help="stream, tiers and exporter health (exit 2 if a part is down)")
    status.add_argument("--format", choices=("table", "json"), default="table")

    find = commands.add_parser("find", help="one job's every event: stream, dead letters, archive")
    find.add_argument("id", help="a job_id or a trace_id")
    find.add_argument("--format", choices=FORMATS, default="table")

    retention = commands.add_parser("retention", help="the retention policy: show it, or apply it now")
    actions = retention.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the policy, what each tier holds, and what the next run would do")
    show.add_argument("--format", choices=("table", "json"), default="table")
    apply = actions.add_parser("apply", help="apply the policy now (under the same lease as the exporter's runs)")
    apply.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    apply.add_argument("--tier", choices=RETENTION_TIERS, action="append",
                       help="only this tier (may be given again; default: every tier built so far)")
    apply.add_argument("--format", choices=("table", "json"), default="table")

    dlq = commands.add_parser("dlq", help="the dead letters: list them, or replay them to the stream after a fix")
    dlq_actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = dlq_actions.add_parser("list", help="newest first, with the reason and the original entry")
    listing.add_argument("--limit", type=_positive(int), default=50, help="newest N (50)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    again = dlq_actions.add_parser("replay", help="append to the stream again and remove from the dead letters")
    again.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (from `dlq list`)")
    again.add_argument("--all", action="store_true", help="every dead letter, oldest first")

    commands.add_parser("stop", help="stop the embedded Redis server")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):  # a script or a pipe: the dashboard needs a terminal
            parser.print_help()
            return 0
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "tui"])
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](config, args)
    except ArchivesError as exc:  # an engine's sentence may quote the data: shown as text
        print(f"archives: {visible(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except QueryInterrupted:
        print("archives: query cancelled; the engine stopped working on it", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        return 130


def cmd_seed(config: Config, args) -> int:
    from exporter.seed import seed_stream

    client = runtime.connect_redis(config)
    started = time.perf_counter()
    seed = args.seed if args.seed is not None else int(time.time())
    count = seed_stream(client, config.pipeline.stream_key, args.jobs, args.days, args.failure_rate,
                        args.pii_rate, seed=seed)
    elapsed = time.perf_counter() - started
    print(f"appended {count} completions to {config.pipeline.stream_key} in {elapsed:.1f}s")
    return 0


def cmd_tui(config: Config, args) -> int:
    from archives_tui.app import ArchivesApp  # Textual loads only for the dashboard

    if args.demo and config.redis.url and not args.demo_on_configured_redis:
        raise UsageError(f"--demo appends synthetic jobs to the stream; this config names a Redis of its own "
                         f"({redact(config.redis.url)}): add --demo-on-configured-redis if that is what you want")
    root = logging.getLogger()
    for handler in list(root.handlers):  # log lines would tear through the screen: keep them for the app
        root.removeHandler(handler)
    app = ArchivesApp(config, demo=args.demo, theme=args.theme)
    try:
        app.run()
    finally:  # an error that ended the app must not leave the exporter's threads running at exit
        if app.background is not None:
            app.background.stop()
    return app.return_code or 0


def cmd_export(config: Config, args) -> int:
    from exporter.service import ExportService  # loaded by the command that exports, not by the dashboard's start

    service = ExportService(config)
    pipeline = service.pipeline
    interrupts = 0

    def on_signal(signum, frame):
        nonlocal interrupts
        interrupts += 1
        service.stop(abort=interrupts > 1)
        if interrupts == 1:
            print("archives: finishing the batches in hand (interrupt again to stop at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.perf_counter()
    try:
        metrics = service.run(once=args.once)
    finally:
        service.close()
    elapsed = time.perf_counter() - started
    rate = metrics.archived / elapsed if elapsed else 0.0
    print(f"archived {metrics.archived} records in {metrics.batches} batches "
          f"({metrics.dead_lettered} to {config.pipeline.stream_key}:dlq) in {elapsed:.1f}s, {rate:,.0f} records/s")
    if metrics.warm_skipped:
        print(f"{metrics.warm_skipped} of them are older than the warm window (retention.clickhouse_ttl): "
              "they are in the cold tier only")
    if pipeline.failure:
        print(f"archives: export --once gave up: {visible(pipeline.failure)}; {pipeline.left_pending} entries stay "
              "pending and are archived by the next run", file=sys.stderr)
        return 1
    if pipeline.left_pending:
        print(f"archives: stopped with {pipeline.left_pending} entries pending (archived by the next start); "
              f"last error: {visible(metrics.last_error or 'none')}", file=sys.stderr)
        return 1
    if metrics.last_error:
        print(f"last error (recovered): {visible(metrics.last_error)}", file=sys.stderr)
    return 0


def _statement(config: Config, args) -> str:
    """The SQL from the argument, a file, standard input or a template: exactly one of them."""
    if sum(x is not None for x in (args.sql, args.file, args.template)) != 1:
        raise UsageError("give the statement as an argument, with -f FILE (or -f - for standard input), "
                         "or with --template NAME")
    if args.template is not None:
        return templates.render(args.template, templates.parse_params(args.param),
                                templates.available(config.query.templates))
    if args.param:
        raise UsageError("--param goes with --template")
    if args.file is None:
        return args.sql
    try:
        return sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}") from None


def cmd_query(config: Config, args) -> int:
    if args.format == "parquet" and not args.output and sys.stdout.isatty():
        raise UsageError("--format parquet writes binary data: add --output FILE")
    sql = _statement(config, args)
    history = QueryHistory(data_dir())
    if args.save_as:
        history.save_favorite(args.save_as, sql.strip())
    if args.explain:
        with runtime.query_layer(config) as queries:
            print(queries.explain(sql))
        return 0
    q = config.query
    started = time.perf_counter()
    if args.format == "table":  # shown whole: the engine cuts it at --limit or query.max_result_rows
        wanted = args.limit + 1 if args.limit else q.max_result_rows  # one more, to know it was cut
        limits = Limits(q.max_execution_time, q.max_rows_to_read, wanted, cut_results=bool(args.limit))
        with runtime.query_layer(config) as queries:
            result = _wait(Execution(queries, sql, limits, history))
        table = result.table.slice(0, args.limit) if args.limit else result.table
        cut = table.num_rows < result.rows
        render(table, "table", sys.stdout.buffer)
        sys.stdout.flush()
    else:  # written as it arrives, any size: the rows-read and time limits still hold
        limits = Limits(q.max_execution_time, q.max_rows_to_read)
        outcome: dict[str, bool] = {}

        def write(reader) -> Taken:
            with _output(args.output) as out:
                written, outcome["cut"] = writers.write_batches(reader, args.format, out, args.limit)
            return Taken(None, written)

        with runtime.query_layer(config) as queries:
            result = _wait(Execution(queries, sql, limits, history, consume=write))
        cut = outcome.get("cut", False)
    print(_summary(result, time.perf_counter() - started, args.output, args.limit if cut else None), file=sys.stderr)
    return 0


def _wait(execution: Execution) -> QueryResult:
    """The execution's result; on Ctrl-C the engine is told to stop before the interrupt goes on."""
    try:
        return execution.wait()
    except KeyboardInterrupt:
        execution.cancel()
        raise QueryInterrupted from None


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[BinaryIO]:
    """Standard output, or ``path`` written whole or not at all: rows go to a private temporary file
    beside it, renamed into place once the export finished (an export holds job data: owner-only)."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    try:
        with writers.whole_file(path) as out:
            yield out
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _summary(result: QueryResult, elapsed: float, output: str | None, cut_at: int | None) -> str:
    """Rows, where they went, time, the tiers that served them and what the engine read."""
    rows = f"{result.rows if cut_at is None else cut_at:,} row{'' if result.rows == 1 else 's'}"
    where = f" to {output}" if output else ""
    tiers = "+".join(result.tiers) or "no archive table"
    read = f"{result.stats.rows_read:,} rows, {human_size(result.stats.bytes_read)} read"
    more = f" (cut at --limit {cut_at}: there are more)" if cut_at is not None else ""
    return f"{rows}{where} in {elapsed:.2f}s · {tiers} · {read}{more}"


def cmd_find(config: Config, args) -> int:
    from exporter.query.find import find_job  # it loads the decoder: only this command needs it

    client = runtime.connect_redis(config)
    try:
        with runtime.query_layer(config) as queries:
            p = config.pipeline
            found = find_job(queries, client, p.stream_key, p.consumer_group, args.id)
    finally:
        client.close()
    if found.num_rows == 0:
        print(f"archives: no event of {args.id!r} in the stream, the dead letters or the archive", file=sys.stderr)
        return 1
    render(found, args.format, sys.stdout.buffer)
    sys.stdout.flush()
    return 0


def cmd_templates(config: Config, args) -> int:
    among = templates.available(config.query.templates)
    rows = [{"name": t.name, "title": t.title, "what": t.description,
             "defaults": ", ".join(f"{k}={v}" for k, v in t.defaults.items()),
             "sql": templates.render(t.name, among=among)} for t in among.values()]
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        render(pa.Table.from_pylist([{k: r[k] for k in ("name", "title", "what", "defaults")} for r in rows]),
               "table", sys.stdout.buffer)
        print("parameters: since, until (durations before now), queue, tenant; "
              "e.g. archives query --template queue-health --param since=3d --param queue=payments")
    return 0


def cmd_history(config: Config, args) -> int:
    history = QueryHistory(data_dir())
    if args.purge:
        print(f"forgot {history.purge()} queries")
        return 0
    if args.favorites:
        rows = [{"name": name, "sql": sql} for name, sql in history.favorites(args.search).items()]
    else:
        rows = [{"started": datetime.fromtimestamp(e.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                 "seconds": round(e.elapsed, 3), "rows": e.rows, "tiers": "+".join(e.tiers), "error": e.error,
                 "sql": e.sql}
                for e in history.entries(args.search, args.limit)]
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        columns = ["name", "sql"] if args.favorites else ["started", "seconds", "rows", "tiers", "error", "sql"]
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in columns})
        render(table, "table", sys.stdout.buffer)
    return 0


def cmd_status(config: Config, args) -> int:
    from archives_tui.render import visible_json  # names and errors come from Redis: shown as text

    info = collect(config)
    if args.format == "json":
        sys.stdout.buffer.write(visible_json(info) + b"\n")
    else:
        print(status_text(info))
    return 2 if info["down"] else 0


def cmd_retention(config: Config, args) -> int:
    client = runtime.connect_redis(config)
    tiers = tuple(args.tier or RETENTION_TIERS) if args.action == "apply" else RETENTION_TIERS
    warm, cold, unavailable = None, None, "the warm store is not open here"
    down: dict[str, str] = {}  # a tier whose store cannot be opened is shown DOWN; the others still are
    if "warm" in tiers:
        try:
            warm = runtime.open_warm(config)
        except StoreBusyError:
            unavailable = ("the exporter running on this store owns it and applies warm retention on its schedule "
                           "(retention.interval)")
        except ArchivesError as exc:
            down["warm"] = str(exc)
    if "cold" in tiers or args.action == "show":
        try:
            cold = runtime.open_cold(config)
        except ArchivesError as exc:
            down["cold"] = str(exc)
    try:
        manager = RetentionManager(config, client, warm=warm, warm_unavailable=unavailable, cold=cold, down=down)
        if args.action == "show":
            shown = manager.show()
            text = retention_text(shown)
        else:
            shown = manager.apply(tiers, dry_run=args.dry_run).as_dict()
            text = run_text(shown)
    except redis.RedisError as exc:
        raise ArchivesError(f"Redis failed during retention: {runtime.describe(exc)}") from None
    finally:
        client.close()
        if warm is not None:
            warm.close()
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(text)
    if args.action == "show":
        return 2 if shown["down"] else 0  # a tier down: shown as DOWN, as status does
    return 1 if shown["skipped"] else 2 if any(tier["down"] for tier in shown["tiers"]) else 0


def cmd_dlq(config: Config, args) -> int:
    """A dead letter holds whatever the producer wrote: listed as text (``visible``: no escape sequence
    reaches the terminal; bytes that are not UTF-8 as ``\\xff``), replayed byte for byte."""
    from archives_tui.render import visible_json, visible_line
    from exporter.dead_letters import is_entry_id

    stream_key = config.pipeline.stream_key
    if args.action == "replay" and bool(args.ids) == args.all:
        raise UsageError("name the dead letters to replay (ids from `archives dlq list`), or give --all")
    malformed = [i for i in args.ids if not is_entry_id(i)] if args.action == "replay" else []
    if malformed:
        raise UsageError(f"'{visible(malformed[0])}' is not a dead letter id: ids look like 1764322800000-0 "
                         "(see `archives dlq list`)")
    client = runtime.connect_redis(config)
    try:
        if args.action == "list":
            letters = list(dead_letters(client, stream_key, args.limit))
            if args.format == "json":
                sys.stdout.buffer.write(visible_json([letter.as_dict() for letter in letters]) + b"\n")
                return 0
            total = client.xlen(dlq_key(stream_key))
            for letter in letters:
                when = letter.failed_at()
                print(f"{letter.id}  {f'{when:%Y-%m-%d %H:%M:%S}' if when else '-'}  {visible_line(letter.reason)}\n"
                      f"    {visible_line(letter.preview(100))}")
            print(f"{len(letters):,} of {total:,} dead letters in {visible(dlq_key(stream_key))}", file=sys.stderr)
            return 0
        done = replay(client, stream_key, None if args.all else args.ids)
    except redis.RedisError as exc:
        raise ArchivesError(f"Redis failed on the dead letters: {runtime.describe(exc)}") from None
    finally:
        client.close()
    shown_key = visible(stream_key)
    for old, new in done.replayed:
        print(f"{old} -> {shown_key} {new}")
    for missing in done.missing:
        print(f"archives: {missing} is not in {shown_key}:dlq (already replayed, or trimmed)", file=sys.stderr)
    for empty in done.empty:
        print(f"archives: {empty} holds no field of the original entry: nothing to replay, it stays", file=sys.stderr)
    print(f"replayed {len(done.replayed):,} dead letters", file=sys.stderr)
    return 1 if done.missing or done.empty else 0


def cmd_stop(config: Config, args) -> int:
    if config.redis.url:
        raise UsageError("redis.url is configured: the embedded Redis server is not in use")
    stopped = stop_redis(data_dir())
    print("stopped the embedded Redis server" if stopped else "the embedded Redis server was not running")
    return 0


COMMANDS = {"tui": cmd_tui, "seed": cmd_seed, "export": cmd_export, "query": cmd_query, "templates": cmd_templates,
            "history": cmd_history, "find": cmd_find, "status": cmd_status, "retention": cmd_retention,
            "dlq": cmd_dlq, "stop": cmd_stop}
