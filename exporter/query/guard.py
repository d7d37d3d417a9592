"""The read-only guard: a user statement is judged on the engine's own parse before anything runs it.

A token scan is no guard (ARCHITECTURE.md): the engine reads ``"file"(...)`` and `` `file`(...) `` as
``file(...)`` and skips characters Python does not call whitespace. So the engine parses, and the guard
decides on what it parsed, failing closed:

1. The text is bounded in size and lexed (``lexer``, linear): one statement, no unterminated token,
   no control or format character outside a string literal.
2. The engine formats it (``formatQuerySingleLine``), the text passed as data (hex), never as SQL: a
   second statement cannot ride along, and the engine refuses multi-statements there.
3. The engine's tree of that normalized text (``EXPLAIN AST``, which parses and runs nothing) is
   judged with allow-lists: the statement's kind, every node's kind, every function anywhere
   (``allowlist``; table functions by name), every table read; settings by name, read from the
   normalized text (the tree prints a bare ``Set``); no ``INTO OUTFILE`` or ``FORMAT``.
4. What runs is the normalized text: exactly what was judged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import pyarrow as pa

from exporter.errors import QueryError, QueryRefused
from exporter.query import lexer
from exporter.query.allowlist import allowed

MAX_STATEMENT_BYTES = 256 << 10  # query.max_statement_bytes' default

# Settings a user may add: they change how a query runs, never what it may read or how long.
ALLOWED_SETTINGS = frozenset({
    "max_threads", "max_block_size", "join_algorithm", "join_use_nulls", "use_query_cache",
    "use_query_condition_cache", "optimize_read_in_order", "aggregate_functions_null_for_empty",
    "date_time_output_format", "prefer_column_name_to_alias", "enable_optimize_predicate_expression",
    "use_skip_indexes", "force_primary_key", "force_index_by_date", "optimize_aggregation_in_order",
})
EXPLAIN_KINDS = {"AST", "SYNTAX", "QUERY TREE", "PLAN", "PIPELINE", "ESTIMATE"}
EXPLAIN_OPTIONS = frozenset({"header", "description", "indexes", "actions", "json", "sorting", "distributed",
                             "projections", "keep_logical_steps", "graph", "compact", "run_passes", "dump_passes",
                             "passes", "dump_tree", "dump_ast", "oneline"})
SHOW_FORMS = ("SHOW TABLES", "SHOW FULL TABLES", "SHOW DATABASES", "SHOW COLUMNS", "SHOW FULL COLUMNS",
              "SHOW FUNCTIONS")
# Table functions that reach nothing outside the archive; jobs_cold_hours is the archive's own view.
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generateSeries", "generate_series",
                             "values", "view", "jobs_cold_hours"})
# What an analyst may read of the engine's own tables. Not system.tables (a view's definition may hold
# the cold tier's S3 key), system.processes or system.query_log (other consoles' SQL), nor anything
# naming the host's paths and disks beyond the archive's own parts.
SYSTEM_TABLES = frozenset({"parts", "columns", "functions", "table_functions", "data_type_families", "one",
                           "numbers", "numbers_mt", "zeros", "zeros_mt", "time_zones",
                           "aggregate_function_combinators"})
NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList", "Identifier", "Literal",
    "Function", "Asterisk", "QualifiedAsterisk", "ColumnsRegexpMatcher", "ColumnsListMatcher",
    "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher", "ColumnsTransformerList",
    "ColumnsExceptTransformer", "ColumnsReplaceTransformer", "ColumnsReplaceTransformer::Replacement",
    "TablesInSelectQuery", "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin",
    "ArrayJoin", "Subquery", "OrderByElement", "WithElement", "WindowDefinition", "WindowListElement", "Set",
    "SampleRatio", "InterpolateElement", "Explain", "DescribeQuery", "ExistsTableQuery", "ShowTables",
    "ShowColumns", "ShowFunctions",
})
ROOTS = {"SelectWithUnionQuery": "SELECT", "Explain": "EXPLAIN", "DescribeQuery": "DESCRIBE",
         "ExistsTableQuery": "EXISTS", "ShowTables": "SHOW", "ShowColumns": "SHOW", "ShowFunctions": "SHOW"}
_IN = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
                 "globalNotNullIn"})
_COMBINATORS = ("SimpleState", "OrDefault", "Distinct", "Resample", "ForEach", "ArgMax", "ArgMin", "OrNull",
                "MergeState", "Merge", "State", "Array", "Null", "Map", "If")
_DAYS = re.compile(r"'(?:\*/\*/\*|year=\d{4}/month=\d{2}/day=\d{2}|\{year=\d{4}/month=\d{2}/day=\d{2}"
                   r"(?:,year=\d{4}/month=\d{2}/day=\d{2})*\})'")
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")  # a string in the tree, escaped by the engine
_NODE = re.compile(r"^( *)([A-Za-z:]+)(.*?)(?: \(children \d+\))?$")


class Parser(Protocol):
    """An engine that parses: chdb (``exporter.engine.parser.parser_for``)."""

    def query_arrow(self, sql: str) -> pa.Table: ...


@dataclass(frozen=True)
class Statement:
    """A statement the guard let through: the engine's normalized text of it (what runs) and its kind."""

    sql: str
    kind: str  # SELECT, EXPLAIN, DESCRIBE, EXISTS or SHOW


@dataclass(frozen=True)
class _Node:
    depth: int
    kind: str
    rest: str


def check(sql: str, parser: Parser, database: str = "default",
          max_bytes: int = MAX_STATEMENT_BYTES) -> Statement:
    """The statement if a console may run it; otherwise QueryRefused saying why in one sentence (or
    QueryError with the engine's sentence for a statement that does not parse)."""
    size = len(sql.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise QueryRefused(f"the statement is {size:,} bytes; at most {max_bytes:,} are read "
                           "(query.max_statement_bytes)")
    _check_text(sql, "statement")
    normalized = _normalized(sql, parser)
    words = _check_text(normalized, "statement as the engine reads it")
    tree = _tree(normalized, parser)
    kind = _judge(tree, normalized, words, database)
    return Statement(normalized, kind)


def _check_text(sql: str, what: str) -> list[lexer.Token]:
    """One statement, every token complete, nothing invisible or controlling outside string literals
    (one pass of the lexer: its cost stays linear in the text's length); its significant tokens."""
    statements, pending = 0, False  # statements ended by ';', and whether one is being read
    words: list[lexer.Token] = []
    for token in lexer.lex(sql):
        if token.kind == "op" and token.text == ";":
            statements, pending = statements + pending, False
            continue
        if token.kind == "open":
            raise QueryRefused(f"the {what} has an unterminated {_OPENED.get(token.text[0], 'heredoc')}")
        if token.kind not in ("space", "comment"):
            pending = True
            words.append(token)
        if token.kind in ("string", "comment"):
            continue
        name = token.kind == "quoted"  # a name or alias holds no line break: it would forge a line of the tree
        odd = next((c for c in (token.name if name else token.text) if _invisible(c) or (name and c in "\t\n\r")),
                   None)
        if odd is not None:
            line = sql.count("\n", 0, token.start) + 1
            raise QueryRefused(f"the {what} holds the character U+{ord(odd):04X} "
                               f"({unicodedata.name(odd, 'a control character')}) on line {line}: remove it")
    statements += pending
    if statements == 0:
        raise QueryRefused("the query is empty")
    if statements > 1:
        raise QueryRefused("one statement per run: remove the ';' between statements")
    return words


_OPENED = {"'": "string", '"': "quoted name", "`": "quoted name", "/": "/* comment"}


def _invisible(char: str) -> bool:
    """A control, format or separator character other than the whitespace every reader agrees on."""
    return (char not in " \t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")) \
        or (unicodedata.category(char) == "Zs" and char != " ")


def _normalized(sql: str, parser: Parser) -> str:
    """The engine's one-line text of the statement, the user's text handed over as hex: data, not SQL."""
    hexed = sql.encode("utf-8", "surrogatepass").hex()
    try:
        table = parser.query_arrow(f"SELECT formatQuerySingleLine(unhex('{hexed}')) AS q "
                                   f"SETTINGS max_query_size = {len(hexed) + 4096}")  # the hex is twice the text
    except QueryError as exc:
        raise QueryError(_engine_sentence(str(exc))) from None
    return table.column(0)[0].as_py()


def _engine_sentence(message: str) -> str:
    """The engine's syntax error (its code already cut by the backend) without the wrapper we sent it in."""
    message = re.sub(r"\s*:?\s*In scope SELECT formatQuerySingleLine\(unhex\('[0-9a-f]*'\)\).*$", "", message)
    message = message.replace("Multi-statements are not allowed", "one statement per run")
    return re.sub(r"\s*\(\w+\)\s*$", "", message).rstrip(". ") or "the statement does not parse"


def _tree(normalized: str, parser: Parser) -> list[_Node]:
    """The engine's syntax tree of one normalized statement (EXPLAIN AST parses and runs nothing)."""
    try:
        table = parser.query_arrow(f"EXPLAIN AST {normalized}")
    except QueryError as exc:
        raise QueryError(_engine_sentence(str(exc))) from None
    nodes = []
    for line in table.column(0).to_pylist():
        found = _NODE.match(line)
        if found is None or any(_invisible(c) for c in _LITERAL.sub("''", line)):  # literals are data
            raise QueryRefused("the statement's syntax tree could not be read, so it is not run")
        nodes.append(_Node(len(found.group(1)), found.group(2), found.group(3).strip()))
    if not nodes or nodes[0].depth != 0:
        raise QueryRefused("the statement's syntax tree could not be read, so it is not run")
    return nodes


def _judge(tree: list[_Node], normalized: str, words: list[lexer.Token], database: str) -> str:
    """The statement's kind, once every node passed; QueryRefused at the first that does not."""
    root = tree[0]
    kind = ROOTS.get(root.kind)
    if (kind is None and words and words[0].upper == "SHOW") or (kind == "SHOW" and not any(
            re.match(rf"{form}\b", normalized) for form in SHOW_FORMS)):
        raise QueryRefused(f"{' '.join(normalized.split()[:2])} is not allowed; SHOW runs as "
                           f"{', '.join(f[5:] for f in SHOW_FORMS)}")
    if kind is None:
        first = words[0].upper if words else root.kind
        raise QueryRefused(f"the archive is read-only here: {first} is not allowed "
                           "(only SELECT, WITH, EXPLAIN, SHOW, DESCRIBE and EXISTS run)")
    kids = _children(tree)
    explain_sets = _check_explain(tree, kids, words) if kind == "EXPLAIN" else 0
    _check_settings(tree, words, explain_sets)
    parents: list[int] = []  # indices of the node's ancestors, the root first
    for index, node in enumerate(tree):
        del parents[node.depth:]
        if node.kind not in NODES:
            raise QueryRefused(_node_refusal(node))
        if node.kind == "SelectWithUnionQuery":
            _check_union(tree, kids[index], words)
        elif node.kind == "Function":
            _check_function(tree, index, parents)
        elif node.kind == "TableIdentifier" or (
                node.kind == "Identifier" and parents and _is_in_table(tree, kids, index, parents)):
            _check_table(_name(node), database)
        parents.append(index)
    return kind


def _name(node: _Node) -> str:
    """The name a node carries, without its alias (``Function plus (alias total)``)."""
    return node.rest.split(" (alias ", 1)[0].strip()


def _node_refusal(node: _Node) -> str:
    if node.kind == "ColumnsApplyTransformer":
        return "APPLY is not allowed: call the function on the columns by name"
    if node.kind == "QueryParameter":
        return "query parameters ({name:Type}) are not set here: write the value"
    return f"the statement uses {node.kind}, which the guard does not allow"


def _children(tree: list[_Node]) -> list[list[int]]:
    """Each node's children, by index: one pass, so a deep tree costs no more than a flat one."""
    kids: list[list[int]] = [[] for _ in tree]
    stack: list[int] = []
    for index, node in enumerate(tree):
        del stack[node.depth:]
        if stack:
            kids[stack[-1]].append(index)
        stack.append(index)
    return kids


def _check_union(tree: list[_Node], children: list[int], words: list[lexer.Token]) -> None:
    """A SELECT's outer clauses: its selects and SETTINGS; INTO OUTFILE and FORMAT are refused."""
    for child in children:
        if tree[child].kind not in ("ExpressionList", "Set"):
            if any(t.upper == "OUTFILE" for t in words):
                raise QueryRefused("INTO OUTFILE writes a file and is not allowed: use --output FILE")
            raise QueryRefused("FORMAT is chosen by the console (--format, Ctrl+E), not in the statement")


def _check_function(tree: list[_Node], index: int, parents: list[int]) -> None:
    name = _name(tree[index])
    if parents and tree[parents[-1]].kind == "TableExpression":
        if name not in TABLE_FUNCTIONS:
            raise QueryRefused(f"the table function {name}() is not allowed: it reaches outside the archive; "
                               "query the archive's tables (jobs, jobs_archive, ...)")
        if name == "jobs_cold_hours":
            _check_cold_hours(tree, index)
        return
    if not _allowed_function(name):
        raise QueryRefused(f"the function {name}() is not allowed in a query: it reaches outside the "
                           "archive's data (files, URLs, servers, the host or the engine's settings)")


def _allowed_function(name: str) -> bool:
    names, folded, _ = allowed()
    return name in names or name.lower() in folded or _aggregate_with_combinators(name)


@lru_cache(maxsize=4096)
def _aggregate_with_combinators(name: str) -> bool:
    """countIf, uniqExactState, COUNTDistinct: an allowed aggregate function and combinators."""
    if len(name) > 128:
        return False
    _, folded, aggregates = allowed()
    for suffix in _COMBINATORS:
        if name.endswith(suffix) and len(name) > len(suffix):
            base = name[: -len(suffix)]
            if base in aggregates or (base.lower() in folded and base.lower() in aggregates) \
                    or _aggregate_with_combinators(base):
                return True
    return False


def _check_cold_hours(tree: list[_Node], index: int) -> None:
    """jobs_cold_hours(days = '<day directories>'): the pattern names day directories, nothing else."""
    depth, shape = tree[index].depth, []
    for node in tree[index + 1:]:
        if node.depth <= depth:
            break
        shape.append((node.kind, _name(node)))
    expected = [("ExpressionList", ""), ("Function", "equals"), ("ExpressionList", ""), ("Identifier", "days")]
    if shape[:4] != expected or len(shape) != 5 or shape[4][0] != "Literal" or not _DAYS.fullmatch(shape[4][1]):
        raise QueryRefused("jobs_cold_hours() takes days = 'year=YYYY/month=MM/day=DD' (or a {a,b} list of "
                           "them): query jobs with a time range instead")


def _is_in_table(tree: list[_Node], kids: list[list[int]], index: int, parents: list[int]) -> bool:
    """``x IN t`` reads the table t: the second argument of an IN function when it is a name."""
    if len(parents) < 2 or tree[parents[-1]].kind != "ExpressionList" or tree[parents[-2]].kind != "Function" \
            or _name(tree[parents[-2]]) not in _IN:
        return False
    siblings = kids[parents[-1]]
    return len(siblings) == 2 and siblings[1] == index


def _check_table(name: str, database: str) -> None:
    if "." not in name:
        return
    schema, _, table = name.partition(".")
    schema, table = schema.strip("`"), table.strip("`")
    if schema == database or (schema == "system" and table in SYSTEM_TABLES):
        return
    if schema == "system":
        raise QueryRefused(f"system.{table} is not open to queries here (allowed: system."
                           f"{', system.'.join(sorted(SYSTEM_TABLES))})")
    raise QueryRefused(f"the database {schema} is not the archive's: query its tables ({database})")


def _check_settings(tree: list[_Node], words: list[lexer.Token], explain_sets: int) -> None:
    """Every SETTINGS name on the allow-list; as many SETTINGS clauses read as the tree has."""
    clauses = 0
    for i, token in enumerate(words):
        if token.kind == "word" and token.upper == "SETTINGS" and i + 2 < len(words) \
                and words[i + 1].kind in ("word", "quoted") and words[i + 2].text == "=":
            clauses += 1
            for name in _assigned(words, i + 1):
                if name.lower() not in ALLOWED_SETTINGS:
                    raise QueryRefused(f"the setting {name} is not allowed in a query (allowed: "
                                       f"{', '.join(sorted(ALLOWED_SETTINGS))})")
    if clauses != sum(node.kind == "Set" for node in tree) - explain_sets:
        raise QueryRefused("the statement's settings could not be read, so it is not run")


def _assigned(words: list[lexer.Token], start: int) -> list[str]:
    """The names of ``a = 1, b = 'x'`` from ``start``, until the list ends."""
    names, i, depth = [], start, 0
    while i + 1 < len(words) and words[i].kind in ("word", "quoted") and words[i + 1].text == "=":
        names.append(words[i].name)
        i += 2
        while i < len(words):
            text = words[i].text
            depth += (text in "([") - (text in ")]")
            if depth < 0 or (depth == 0 and text == ","):
                break
            if depth == 0 and words[i].kind == "word" and words[i].upper in ("UNION", "EXCEPT", "INTERSECT",
                                                                              "FORMAT", "SELECT", "WITH"):
                return names
            i += 1
        if i < len(words) and words[i].text == "," and depth == 0:
            i += 1
        else:
            break
    return names


def _check_explain(tree: list[_Node], kids: list[list[int]], words: list[lexer.Token]) -> int:
    """EXPLAIN of a SELECT, of a kind that runs nothing, with options by name; returns its Set count."""
    explained = tree[0].rest.removeprefix("EXPLAIN").strip() or "PLAN"
    if explained not in EXPLAIN_KINDS:
        raise QueryRefused(f"EXPLAIN {explained} is not allowed (allowed: {', '.join(sorted(EXPLAIN_KINDS))})")
    kinds = [tree[c].kind for c in kids[0]]
    if kinds not in (["SelectWithUnionQuery"], ["Set", "SelectWithUnionQuery"]):
        raise QueryRefused("EXPLAIN explains a SELECT here, nothing else")
    if kinds[0] == "Set":
        start = 1 + len(explained.split()) if words[1].upper == explained.split()[0] else 1
        for name in _assigned(words, start):
            if name.lower() not in EXPLAIN_OPTIONS:
                raise QueryRefused(f"EXPLAIN option {name} is not allowed")
        return 1
    return 0
