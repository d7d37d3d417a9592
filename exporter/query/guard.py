"""The read-only guard: a user statement is parsed and judged before anything reaches the engine.

Per-query settings are no guard in chdb (ARCHITECTURE.md: readonly=2 still runs file() and url(), and
a trailing SETTINGS belongs to the SELECT, not to an INSERT INTO FUNCTION), so the statement itself is
read: one statement; SELECT, WITH, EXPLAIN, SHOW, DESCRIBE or EXISTS; no function that reaches files,
URLs, other servers or the host process; no INTO OUTFILE; user SETTINGS only from an allow-list that
cannot raise a limit or touch readonly. Comments and string literals are tokenized like ClickHouse's
lexer does, so nothing hides behind them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.errors import QueryError


class QueryRefused(QueryError):
    """A statement the console does not run; the message says why in one sentence."""


READ_KINDS = {"SELECT", "WITH", "EXPLAIN", "SHOW", "DESCRIBE", "DESC", "EXISTS"}

# Functions (table or scalar) that read or write outside the archive: files, URLs, object stores, other
# databases and servers, programs, and (chdb) the host process's Python variables.
OUTSIDE = {
    "file", "url", "urlcluster", "remote", "remotesecure", "cluster", "clusterallreplicas", "s3", "s3cluster",
    "gcs", "oss", "cosn", "hdfs", "hdfscluster", "azureblobstorage", "azureblobstoragecluster", "deltalake",
    "deltalakecluster", "hudi", "hudicluster", "iceberg", "icebergs3", "icebergcluster", "icebergazure",
    "iceberghdfs", "mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc", "odbc", "executable",
    "executablepool", "input", "python", "pythonscript", "arrowstream", "fuzzjson", "fuzzquery", "loop",
    "prometheusquery", "ytsaurus", "timeseriesdata", "dictionary", "filecluster", "filesystem", "paimon",
    "paimons3", "paimoncluster", "kafka", "nats", "rabbitmq", "hive", "mergetreeindex", "mergetreeparts",
}

# Settings a user may add: they change how a query runs, never what it may read or how long.
ALLOWED_SETTINGS = {
    "max_threads", "max_block_size", "join_algorithm", "join_use_nulls", "use_query_cache",
    "use_query_condition_cache", "optimize_read_in_order", "aggregate_functions_null_for_empty",
    "date_time_output_format", "prefer_column_name_to_alias", "enable_optimize_predicate_expression",
    "use_skip_indexes", "force_primary_key", "force_index_by_date", "optimize_aggregation_in_order",
}

_TOKEN = re.compile(r"""
      (?P<space>\s+)
    | (?P<line_comment>(?:--|\#!?|//)[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<quoted>"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<heredoc>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
    | (?P<number>\d[\w.]*)
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<op>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, string, number, op
    text: str
    start: int = 0  # offset in the statement, for a rewrite that splices text

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class Statement:
    """A statement the guard let through: its text (no trailing semicolon) and its kind (SELECT, ...)."""

    sql: str
    kind: str


def tokens(sql: str) -> list[Token]:
    """Significant tokens of ``sql``: comments and whitespace dropped; unterminated ones are refused."""
    found: list[Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None or (match.lastgroup == "op" and match.group() in "'\"`"):
            raise QueryRefused("the statement has an unterminated string or quoted name")
        kind = match.lastgroup
        if kind == "block_comment":
            position = _end_of_block_comment(sql, match.end())
            continue
        if kind == "heredoc":
            kind = "string"
        if kind not in ("space", "line_comment"):
            found.append(Token(kind, match.group(), match.start()))
        position = match.end()
    return found


def _end_of_block_comment(sql: str, start: int) -> int:
    """Block comments nest in ClickHouse: ``/* a /* b */ c */`` is one comment."""
    depth, position = 1, start
    while depth:
        opening, closing = sql.find("/*", position), sql.find("*/", position)
        if closing < 0:
            raise QueryRefused("the statement has an unterminated /* comment")
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position


def check(sql: str) -> Statement:
    """The statement if the console may run it; otherwise QueryRefused saying why."""
    found = tokens(sql)
    while found and found[-1].text == ";":
        found.pop()
    if not found:
        raise QueryRefused("the query is empty")
    if any(t.kind == "op" and t.text == ";" for t in found):
        raise QueryRefused("one statement per run: remove the ';' between statements")
    kind = found[0].upper if found[0].kind == "word" else found[0].text
    if kind not in READ_KINDS:
        raise QueryRefused(f"the archive is read-only here: {kind} is not allowed "
                           "(only SELECT, WITH, EXPLAIN, SHOW, DESCRIBE and EXISTS run)")
    for index, token in enumerate(found):
        following = found[index + 1] if index + 1 < len(found) else None
        if token.kind == "word" and following is not None and following.text == "(" \
                and token.text.lower() in OUTSIDE:
            raise QueryRefused(f"{token.text}() reaches outside the archive and is not allowed; "
                               "query the archive's tables (jobs_archive, ...)")
        if token.kind == "word" and token.upper == "OUTFILE":
            raise QueryRefused("INTO OUTFILE writes a file and is not allowed: use --output FILE")
        if token.upper == "SETTINGS":
            _check_settings(found[index + 1:])
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return Statement(text, "DESCRIBE" if kind == "DESC" else kind)


def _check_settings(rest: list[Token]) -> None:
    """``SETTINGS a = 1, b = 'x'``: every name must be on the allow-list."""
    index = 0
    while index + 1 < len(rest) and rest[index].kind in ("word", "quoted") and rest[index + 1].text == "=":
        name = rest[index].text.strip('"`').lower()
        if name not in ALLOWED_SETTINGS:
            raise QueryRefused(f"the setting {name} is not allowed in a query (allowed: "
                               f"{', '.join(sorted(ALLOWED_SETTINGS))})")
        index += 3  # name = value
        while index < len(rest) and rest[index].text not in (",", ")") and not (
                rest[index].kind == "word" and rest[index].upper in ("FORMAT", "UNION", "EXCEPT", "INTERSECT")):
            index += 1
        if index < len(rest) and rest[index].text == ",":
            index += 1
        else:
            break
