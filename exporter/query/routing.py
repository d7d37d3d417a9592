"""Routing a query to the tiers it needs: ``FROM jobs`` with a time range reads only that range.

ClickHouse cannot tell from ``enqueue_time >= X`` which Parquet files to skip: a file's hour is in its
path, which the engine does not relate to the column. So the bounds a query puts on ``jobs`` are read
here, and ``jobs`` is replaced by a subquery over the tiers the range needs: jobs_archive from the warm
cutoff on, and jobs_cold_hours before it, over the range's day directories only and filtered on the file
hour, so that files outside the range are neither listed nor opened. A range inside the warm window
reads jobs_archive alone (the cold tier is not even listed). The cutoff is worked out once, with the
bounds; should retention move it in the milliseconds before the query runs, the rows of the day it moved
past would be missed by that one query.
Only bounds that certainly hold are used:
conjuncts of the WHERE (or PREWHERE) of a SELECT that reads ``jobs`` alone, comparing ``enqueue_time``
with an expression the engine evaluates to a constant. Anything else (an OR at that level, a join, a
CTE named jobs) is left as written: it reads every cold file, which is slower but equally right. The
user's own conditions still apply in full on top of the view's range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exporter.engine.interface import ClickHouseBackend
from exporter.engine.sql import sql_string
from exporter.errors import QueryError
from exporter.query.lexer import Token, tokens
from exporter.tiers.federation import ALL_DAYS, COLD, COLD_HOURS, CUTOFF, FEDERATED, WARM, days_glob

WARM_TIER, COLD_TIER = "warm", "cold"
_WARM_TABLES = {WARM, "queue_hourly_stats", "error_patterns"}
_CLAUSE_ENDS = {"GROUP", "ORDER", "LIMIT", "HAVING", "SETTINGS", "WINDOW", "QUALIFY", "UNION", "EXCEPT",
                "INTERSECT", "FORMAT", "INTO", "OFFSET", "WHERE", "PREWHERE"}
_NOT_ALIASES = _CLAUSE_ENDS | {"FINAL", "SAMPLE", "ARRAY", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "JOIN",
                               "GLOBAL", "ANY", "ALL", "ASOF", "SEMI", "ANTI", "PASTE", "ON", "USING"}
_NOT_CONSTANT = {"SELECT", "AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "BETWEEN", "GLOBAL"}
# A bound with now() is worked out here a moment before the query runs: an upper bound gets this slack.
_SLACK = timedelta(minutes=1)
_MOST_DAYS_NAMED = 400  # a cold range of more days lists every day directory
_EPOCH, _END = datetime(1970, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class Route:
    """The statement to run and the tiers it reads (empty when it reads no archive table). ``shape``
    is the statement with every federated table read from jobs_archive instead: the same columns and
    types (the views are built to match it), so DESCRIBE of it lists no cold file."""

    sql: str
    tiers: tuple[str, ...]
    shape: str = ""


@dataclass(frozen=True)
class _Range:
    table: str  # jobs or jobs_cold
    start: int  # offsets of the table's name, to replace
    end: int
    lowers: list[str]  # constant expressions enqueue_time is at least
    uppers: list[tuple[str, bool]]  # ... and below (or, when True, at most)
    aliased: bool  # the query names the table itself (FROM jobs j): the replacement needs no alias
    since: datetime | None = None  # the evaluated bounds
    until: datetime | None = None


def route(backend: ClickHouseBackend, sql: str) -> Route:
    """``sql`` (already passed by the guard) with each bounded read of jobs or jobs_cold rewritten, and
    the tiers it reads."""
    found = tokens(sql)
    tables = _tables(found)
    shape = _shape(found, tables, sql)
    routable = {FEDERATED, COLD}
    shadowed = any(t.text.strip("`\"") in routable and i + 2 < len(found) and found[i + 1].upper == "AS"
                   and found[i + 2].text == "(" for i, t in enumerate(found))  # WITH jobs AS (...)
    candidates = [] if shadowed else [r for i, name in tables.items()
                                      if name in routable and (r := _range(found, i, name, sql))]
    values, cutoff = _evaluate(backend, [text for r in candidates for text in r.lowers + [t for t, _ in r.uppers]])
    ranges = [] if cutoff is None else [bounded for r in candidates if (bounded := _bounded(r, values))]
    text = sql
    for r in sorted(ranges, key=lambda r: r.start, reverse=True):
        text = text[:r.start] + _replacement(r, cutoff) + text[r.end:]  # type: ignore[arg-type]
    return Route(text, _tiers(found, tables, {r.start: r for r in ranges}, cutoff), shape)


def _tiers(found: list[Token], tables: dict[int, str], ranges: dict[int, _Range],
           cutoff: datetime | None) -> tuple[str, ...]:
    """The tiers the statement reads: by table, and for a bounded read of jobs, by its range."""
    tiers: set[str] = set()
    for i, name in tables.items():
        r = ranges.get(found[i].start)
        if name in _WARM_TABLES:
            tiers.add(WARM_TIER)
        elif name in (COLD, COLD_HOURS):
            tiers.add(COLD_TIER)
        elif name == FEDERATED and (r is None or cutoff is None):
            tiers |= {WARM_TIER, COLD_TIER}
        elif name == FEDERATED and (r.since or _EPOCH) < (r.until or _END):
            tiers |= {WARM_TIER} if (r.until or _END) > cutoff else set()
            tiers |= {COLD_TIER} if (r.since or _EPOCH) < cutoff else set()
    return tuple(t for t in (WARM_TIER, COLD_TIER) if t in tiers)


def _shape(found: list[Token], tables: dict[int, str], sql: str) -> str:
    """``sql`` with each read of jobs or jobs_cold made a read of jobs_archive."""
    edits = []
    for i, name in tables.items():
        if name not in (FEDERATED, COLD):
            continue
        last = i
        following = found[last + 1] if last + 1 < len(found) else None
        aliased = following is not None and (following.upper == "AS" or (
            following.kind in ("word", "quoted") and following.upper not in _NOT_ALIASES))
        end = found[last].start + len(found[last].text)
        edits.append((found[i].start, end, WARM if aliased else f"{WARM} AS {name}"))
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


def _replacement(r: _Range, cutoff: datetime) -> str:
    """A subquery reading the range from the tiers it needs: warm rows from the cutoff on, cold rows
    before it from the files of the range's hours only."""
    since, until = r.since or _EPOCH, r.until or _END
    if r.table == COLD:  # the cold tier only, whatever the cutoff
        cutoff = _END
    reads = []
    if until > cutoff:
        reads.append(f"SELECT * FROM {WARM} WHERE enqueue_time >= {_time(max(since, cutoff))} "
                     f"AND enqueue_time < {_time(until)}")
    if since < cutoff:
        first_hour, end = since.replace(minute=0, second=0, microsecond=0), min(until, cutoff)
        reads.append(f"SELECT * EXCEPT (file_hour) FROM {COLD_HOURS}(days = {sql_string(_days(first_hour, end))}) "
                     f"WHERE file_hour >= {_time(first_hour)} AND file_hour < {_time(end)} "
                     f"AND enqueue_time >= {_time(since)} AND enqueue_time < {_time(end)}")
    if not reads:  # an empty range: no rows, the columns still
        reads.append(f"SELECT * FROM {WARM} WHERE 0")
    read = f"({' UNION ALL '.join(reads)})"
    return read if r.aliased else f"{read} AS {r.table}"


def _days(first: datetime, end: datetime) -> str:
    """The pattern of the day directories from ``first`` to ``end`` (all of them for a long range: the
    pattern would be longer than the listing it saves)."""
    count = (end - first).days + 2
    if count > _MOST_DAYS_NAMED:
        return ALL_DAYS
    days = {(first + timedelta(days=n)).date() for n in range(count)}
    return days_glob(d for d in days if first.date() <= d and datetime(d.year, d.month, d.day, tzinfo=UTC) < end)


def _time(value: datetime) -> str:
    return f"toDateTime64('{_literal(value)}', 3, 'UTC')"


def _tables(found: list[Token]) -> dict[int, str]:
    """The tables a statement reads, by token index: names after FROM or JOIN (``db.name`` too)."""
    tables = {}
    for i, token in enumerate(found):
        if token.upper not in ("FROM", "JOIN") or i + 1 >= len(found) or found[i + 1].kind not in ("word", "quoted"):
            continue
        name = i + 1
        if name + 2 < len(found) and found[name + 1].text == "." and found[name + 2].kind in ("word", "quoted"):
            name += 2
        tables[name] = found[name].text.strip("`\"")
    return tables


def _range(found: list[Token], i: int, table: str, sql: str) -> _Range | None:
    """The bounds on enqueue_time of the SELECT reading ``table`` at token ``i`` (not yet evaluated)."""
    if found[i - 1].upper != "FROM" or (i + 1 < len(found) and found[i + 1].text == "("):
        return None
    qualifiers = {table}
    j = i + 1
    if j < len(found) and found[j].upper == "AS":
        j += 1
    aliased = j < len(found) and found[j].kind in ("word", "quoted") and found[j].upper not in _NOT_ALIASES
    if aliased:
        qualifiers.add(found[j].text.strip("`\""))
        j += 1
    lowers: list[str] = []
    uppers: list[tuple[str, bool]] = []
    for clause in _filters(found, j):
        if clause is None:
            return None  # a join: enqueue_time may not be this table's
        for conjunct in clause:
            bound = _bound(conjunct, qualifiers, sql)
            if bound:
                lowers += bound[0]
                uppers += bound[1]
    if not lowers and not uppers:
        return None
    token = found[i]
    return _Range(table, token.start, token.start + len(token.text), lowers, uppers, aliased)


def _bounded(r: _Range, values: dict[str, datetime]) -> _Range | None:
    """The range with its bounds evaluated; None when none of them is a constant."""
    lowers = [values[text] for text in r.lowers if text in values]
    uppers = [_upper(values[text], inclusive) for text, inclusive in r.uppers if text in values]
    if not lowers and not uppers:
        return None
    return dataclasses.replace(r, since=max(lowers, default=None), until=min(uppers, default=None))


def _scope(found: list[Token], j: int) -> Iterator[tuple[int, Token, bool]]:
    """Tokens from ``j`` to the end of the enclosing parentheses, each with whether it is at their top level."""
    depth = 0
    for k in range(j, len(found)):
        text = found[k].text
        if text == ")" and depth == 0:
            return
        yield k, found[k], depth == 0
        depth += (text == "(") - (text == ")")


def _filters(found: list[Token], j: int) -> list[list[list[Token]] | None]:
    """The conjuncts of each WHERE / PREWHERE of the SELECT whose FROM list ends before token ``j``;
    [None] for a join. A clause with OR at its top level gives no bound and is left out."""
    clauses: list[list[list[Token]] | None] = []
    resume = j
    for k, token, top in _scope(found, j):
        if k < resume or not top:
            continue
        if token.upper in ("JOIN", "USING") or token.text == ",":
            return [None]
        if token.upper in ("WHERE", "PREWHERE"):
            resume, conjuncts = _conjuncts(found, k + 1)
            clauses.append(conjuncts)
        elif token.upper in _CLAUSE_ENDS:
            break
    return [c for c in clauses if c is not None]


def _conjuncts(found: list[Token], j: int) -> tuple[int, list[list[Token]] | None]:
    """Split a WHERE at its top-level ANDs (an AND after BETWEEN belongs to it). Returns where the
    clause ends, and its conjuncts (None when it has OR at its top level)."""
    parts: list[list[Token]] = [[]]
    between, mixed, end = False, False, j
    for k, token, top in _scope(found, j):
        end = k
        if top and token.upper in _CLAUSE_ENDS:
            break
        end = k + 1
        if top and token.upper in ("OR", "XOR"):
            mixed = True
        elif top and token.upper == "BETWEEN":
            between = True
        elif top and token.upper == "AND" and not between:
            parts.append([])
            continue
        elif top and token.upper == "AND":
            between = False
        parts[-1].append(token)
    return end, None if mixed else [inner for part in parts for inner in _unwrapped(part)]


def _unwrapped(conjunct: list[Token]) -> list[list[Token]]:
    """A conjunct in parentheses is read inside them, split at its own ANDs: the engine's normalized
    text writes ``a AND b`` as ``(a) AND (b)`` and a BETWEEN as ``((x >= a) AND (x <= b))``."""
    if len(conjunct) < 2 or conjunct[0].text != "(" or conjunct[-1].text != ")":
        return [conjunct]
    depth = 0
    for k, token in enumerate(conjunct):
        depth += (token.text == "(") - (token.text == ")")
        if depth == 0 and k < len(conjunct) - 1:
            return [conjunct]  # (a) + (b): the first parenthesis closes before the end
    _, inner = _conjuncts([*conjunct[1:-1], Token("op", ")", conjunct[-1].start)], 0)
    return [conjunct] if inner is None else inner


def _bound(conjunct: list[Token], qualifiers: set[str], sql: str) -> tuple[list[str], list[tuple[str, bool]]] | None:
    """Lower and upper bounds from ``enqueue_time <op> constant`` or ``enqueue_time BETWEEN a AND b``,
    as expression texts (an upper bound says whether it is inclusive)."""
    rest = conjunct
    if len(rest) > 2 and rest[1].text == "." and rest[0].text.strip("`\"") in qualifiers:
        rest = rest[2:]
    if len(rest) < 3 or rest[0].text.strip("`\"") != "enqueue_time":
        return None
    op, rest = _operator(rest[1:])
    if op == "BETWEEN":
        ands = [k for k, t in enumerate(rest) if t.upper == "AND"]
        if len(ands) != 1:
            return None
        low, high = _expression(rest[:ands[0]], sql), _expression(rest[ands[0] + 1:], sql)
        return ([low] if low else [], [(high, True)] if high else [])
    value = _expression(rest, sql) if op else None
    if value is None:
        return None
    if op in (">", ">="):
        return [value], []
    if op in ("<", "<="):
        return [], [(value, op == "<=")]
    return [value], [(value, True)]  # =


def _operator(rest: list[Token]) -> tuple[str | None, list[Token]]:
    """The comparison a conjunct starts with (the lexer reads ``>=`` as one token)."""
    first = rest[0].text
    if rest[0].upper == "BETWEEN":
        return "BETWEEN", rest[1:]
    if first in ("<", ">", "<=", ">=", "="):
        return first, rest[1:]
    return ("=", rest[1:]) if first == "==" else (None, rest)


def _expression(tokens_: list[Token], sql: str) -> str | None:
    """The text of an expression that may be a constant: no column comparison, no subquery."""
    if not tokens_ or any(t.kind == "word" and t.upper in _NOT_CONSTANT for t in tokens_) or any(
            t.kind == "op" and any(c in "<>=!" for c in t.text) for t in tokens_):
        return None
    last = tokens_[-1]
    return sql[tokens_[0].start:last.start + len(last.text)]


def _evaluate(backend: ClickHouseBackend, texts: list[str]) -> tuple[dict[str, datetime], datetime | None]:
    """The value of each expression that is a constant time, and the warm cutoff: in one round trip
    when every expression is one, else one each (an expression reading a column fails on its own)."""
    if not texts:
        return {}, None
    unique = list(dict.fromkeys(texts))
    columns = [f"toUnixTimestamp64Micro(toDateTime64({text}, 6, 'UTC')) AS c{k}" for k, text in enumerate(unique)]
    cutoff = f"(SELECT toUnixTimestamp64Micro(cutoff) FROM {CUTOFF}) AS cutoff"
    try:
        row = backend.query_arrow(f"SELECT {', '.join([*columns, cutoff])}").to_pylist()[0]
        return {text: _micros(row[f"c{k}"]) for k, text in enumerate(unique)}, _micros(row["cutoff"])
    except QueryError:
        pass
    values = {}
    for text, column in zip(unique, columns, strict=True):
        try:
            values[text] = _micros(backend.query_arrow(f"SELECT {column}").column(0)[0].as_py())
        except QueryError:
            continue  # it reads a column, or is no time at all: no bound from it
    try:
        found = _micros(backend.query_arrow(f"SELECT {cutoff}").column(0)[0].as_py())
    except QueryError:  # no federation here: no cutoff to route by
        found = None
    return values, found


def _micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _upper(value: datetime, inclusive: bool) -> datetime:
    """An exclusive upper bound in whole milliseconds, with slack for now() moving on."""
    whole = value.replace(microsecond=value.microsecond // 1000 * 1000)
    step = timedelta(milliseconds=1) if inclusive or whole != value else timedelta(0)
    return min(whole + step + _SLACK, _END)


def _literal(value: datetime) -> str:
    return max(value, _EPOCH).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
