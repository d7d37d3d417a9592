"""EXPLAIN with indexes and estimates, and SQL pretty-printing, both done by the engine itself.

Both pass the guard first: EXPLAIN does not run the statement, but a refused statement is refused
whatever is asked of it.
"""

from __future__ import annotations

from exporter.engine.interface import ClickHouseBackend
from exporter.engine.sql import sql_string
from exporter.errors import QueryError
from exporter.query.guard import QueryRefused, check
from exporter.query.routing import route


def explain(backend: ClickHouseBackend, sql: str) -> str:
    """The plan with the indexes and partitions it uses, then the engine's estimate of rows to read."""
    statement = check(sql)
    if statement.kind not in ("SELECT", "WITH"):
        raise QueryRefused(f"--explain applies to SELECT and WITH statements, not {statement.kind}")
    routed = route(backend, statement.sql)  # the plan of what would run, tiers pruned as they would be
    plan = backend.query_arrow(f"EXPLAIN indexes = 1 {routed.sql}").column(0).to_pylist()
    try:
        estimates = backend.query_arrow(f"EXPLAIN ESTIMATE {routed.sql}").to_pylist()
    except QueryError:  # an engine without EXPLAIN ESTIMATE: the plan alone
        estimates = []
    tiers = f"tiers: {' + '.join(routed.tiers) or 'none'}"
    lines = [tiers, *plan, *(f"estimate: {e['database']}.{e['table']}: {e['rows']:,} rows to read in "
                             f"{e['parts']} parts, {e['marks']} marks" for e in estimates)]
    return "\n".join(lines)


def pretty(backend: ClickHouseBackend, sql: str) -> str:
    """The statement laid out by the engine's own formatter; unchanged where the engine has none."""
    statement = check(sql)
    try:
        return backend.query_arrow(f"SELECT formatQuery({sql_string(statement.sql)}) AS q").column(0)[0].as_py()
    except QueryError:  # chdb-core-lite and servers before 23.x have no formatQuery
        return statement.sql
