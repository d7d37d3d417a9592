"""What the SQL editor knows about ClickHouse's words, without Textual: a tokenizer for highlighting and
the candidates for completion, both from the engine's own catalog (a small built-in set before it arrives).

Highlights are TextArea's: per line, ``(start, end, name)`` with start and end in UTF-8 bytes of that line
(``end`` None: to the end of the line), ``name`` a key of the TextArea theme's ``syntax_styles``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.engine.interface import Catalog

Highlight = tuple[int, int | None, str]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Before the catalog arrives (the archive opens in a worker): enough for the first paint. These are
# keywords in any case; the engine's own list (660 words, some as common as NAME or ID) only in upper case.
CORE_KEYWORDS = _words("""
    ALL AND ANY ARRAY AS ASC BETWEEN BY CASE CAST CROSS DESC DISTINCT ELSE END EXCEPT EXISTS EXPLAIN FINAL
    FIRST FORMAT FROM FULL GLOBAL GROUP HAVING ILIKE IN INNER INSERT INTERVAL INTO IS JOIN LAST LEFT LIKE LIMIT
    NOT NULLS OFFSET ON OR ORDER OUTER OVER PARTITION PREWHERE RIGHT ROWS SAMPLE SELECT SETTINGS THEN TOTALS
    UNION USING VALUES WHEN WHERE WINDOW WITH
""")
TIME_UNITS = _words("SECOND MINUTE HOUR DAY WEEK MONTH QUARTER YEAR")  # keywords in upper case only: hour is an alias
CONSTANTS = frozenset({"NULL", "TRUE", "FALSE"})
BUILTIN_TYPES = _words("""
    String FixedString UUID Bool Date Date32 DateTime DateTime64 Decimal Decimal32 Decimal64 Decimal128
    Float32 Float64 Int8 Int16 Int32 Int64 Int128 Int256 UInt8 UInt16 UInt32 UInt64 UInt128 UInt256
    Enum8 Enum16 IPv4 IPv6 JSON Array Map Tuple Nullable LowCardinality
""")
_SHORT_KEYWORDS = frozenset({"AS", "BY", "IN", "IS", "ON", "OR", "TO"})  # the two-letter ones worth colour

# One pass over the whole text; the order of the alternatives is the precedence (a comment wins over an
# operator, a word over a number inside it). Unclosed strings and comments run to the end of the text.
TOKEN = re.compile(r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.)*(?:'|\Z))
  | (?P<quoted>`(?:[^`\\]|\\.)*(?:`|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
  | (?P<placeholder>\{[A-Za-z_]\w*\})
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)(?P<call>\()?
  | (?P<number>0[xX][0-9A-Fa-f]+|0[bB][01]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<operator>->|::|\|\||[-+*/%=<>!]+|[?:])
""", re.VERBOSE | re.DOTALL)
_NAMES = {"comment": "comment", "string": "string", "quoted": "variable", "placeholder": "variable.parameter",
          "number": "number", "operator": "operator"}
HIGHLIGHT_NAMES = frozenset({*_NAMES.values(), "keyword", "function", "type", "constant.builtin"})


@dataclass(frozen=True)
class Candidate:
    """One completion: what the list shows, what accepting it inserts, and what kind of name it is."""

    name: str
    insert: str
    kind: str  # table, column, function, aggregate, keyword, type, template
    detail: str = ""  # a column's type, a table's engine


class Vocabulary:
    """The words of one engine: built in until ``Vocabulary(catalog)``. Classifying a word is cached, so
    retokenizing the whole statement on every edit stays in the low milliseconds."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog
        if catalog is None:
            self.keywords, self.types, self.functions = CORE_KEYWORDS | TIME_UNITS, BUILTIN_TYPES, frozenset()
            self.columns: frozenset[str] = frozenset()
        else:
            words = {w for k in catalog.keywords for w in k.split()} or CORE_KEYWORDS | TIME_UNITS  # old servers: none
            self.keywords = frozenset(w for w in words if w.isupper() and (len(w) > 2 or w in _SHORT_KEYWORDS))
            self.types, self.functions = catalog.types or BUILTIN_TYPES, catalog.functions
            self.columns = frozenset(c.name for t in catalog.tables for c in t.columns)
        # a type read in any case is listed in lower case too (Catalog.types); such a type is coloured in
        # upper case as well (VARCHAR), never as a lower-case word (a column named date stays a column)
        self.any_case_types = frozenset(t.upper() for t in self.types if t.lower() in self.types)
        self.all_keywords = self.keywords | CORE_KEYWORDS
        self._seen: dict[tuple[str, bool], str | None] = {}
        self._candidates: list[tuple[str, Candidate, int]] | None = None
        self._column_tables: dict[str, set[str]] = {}  # a column's name: the tables that have one so named

    def classify(self, word: str, call: bool) -> str | None:
        """The highlight name of a word (``call``: an opening parenthesis follows it), or None."""
        key = (word, call)
        if key in self._seen:
            return self._seen[key]
        upper = word.upper()
        name: str | None = None
        if call:
            if word in self.functions:
                name = "function"
            elif word in self.types or upper in self.any_case_types:
                name = "type"
            elif not self.functions or word.lower() in self.functions:  # COUNT(; any call before the catalog
                name = "function"
            elif upper in CORE_KEYWORDS or word in self.keywords:
                name = "keyword"
        elif word in self.types and word not in self.columns:
            name = "type"
        elif upper in CONSTANTS:
            name = "constant.builtin"
        elif word in self.columns:
            name = None  # a column named like a keyword (name, type, date) is a column
        elif upper in CORE_KEYWORDS or word in self.keywords:
            name = "keyword"
        elif word in self.any_case_types:
            name = "type"
        self._seen[key] = name
        return name

    def highlights(self, lines: Sequence[str]) -> dict[int, list[Highlight]]:
        """Highlights of a document given as its lines, by line index (TextArea's ``_highlights``)."""
        text = "\n".join(lines)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        plain = [line.isascii() for line in lines]
        found: dict[int, list[Highlight]] = {}
        classify, row = self.classify, 0

        def column(at_row: int, offset: int) -> int:
            col = offset - starts[at_row]
            return col if plain[at_row] else len(lines[at_row][:col].encode())

        for match in TOKEN.finditer(text):
            group = match.lastgroup
            if group == "call":  # the word group ended with its parenthesis: colour the word only
                start, end = match.span("word")
                name = classify(match.group("word"), True)
            elif group == "word":
                start, end = match.span()
                name = classify(match.group(), False)
            else:
                start, end = match.span()
                name = _NAMES[group]
            if name is None:
                continue
            while starts[row + 1] <= start:
                row += 1
            if end <= starts[row + 1] - 1:  # on one line, the common case
                found.setdefault(row, []).append((column(row, start), column(row, end), name))
                continue
            found.setdefault(row, []).append((column(row, start), None, name))
            row += 1
            while starts[row + 1] - 1 < end:
                found.setdefault(row, []).append((0, None, name))
                row += 1
            if end > starts[row]:
                found.setdefault(row, []).append((0, column(row, end), name))
        return found

    # -- completion ------------------------------------------------------------------------------------------

    def _all(self) -> list[tuple[str, Candidate, int]]:
        """Every name completion may offer, lower-cased for matching, with its rank among kinds."""
        if self._candidates is not None:
            return self._candidates
        catalog = self.catalog
        found: list[tuple[str, Candidate, int]] = []
        seen: set[str] = set()

        def add(candidate: Candidate, rank: int) -> None:
            folded = candidate.name.lower()
            if folded not in seen:
                seen.add(folded)
                found.append((folded, candidate, rank))

        tables = [t for t in catalog.tables if not t.name.startswith(".")] if catalog else []
        for table in tables:
            add(Candidate(table.name, table.name, "table", table.engine), RANK["table"])
        for table in tables:  # before keywords: a column named like one (name, type) stays a column
            for col in table.columns:
                self._column_tables.setdefault(col.name.lower(), set()).add(table.name)
                add(Candidate(col.name, col.name, "column", col.type), RANK["column"])
        if catalog:
            aggregates = catalog.aggregate_functions
            for name in sorted(catalog.functions):
                add(Candidate(name, name + "(", "aggregate" if name in aggregates else "function"), RANK["function"])
        keywords = catalog.keywords if catalog and catalog.keywords else CORE_KEYWORDS | TIME_UNITS
        for keyword in sorted(k for k in keywords if k.replace(" ", "").replace("_", "").isupper()
                              and (len(k) > 2 or k in _SHORT_KEYWORDS)):
            add(Candidate(keyword, keyword, "keyword"), RANK["keyword"])
        for name in sorted(self.types):  # DateTime64 sorts before its lower-case twin, which is left out
            add(Candidate(name, name, "type"), RANK["type"])
        for name in catalog.templates if catalog else ():
            add(Candidate(name, name, "template"), RANK["template"])
        self._candidates = found
        return found

    def complete(self, statement: str, prefix: str, qualifier: str | None = None, at: int | None = None,
                 limit: int = 50) -> list[Candidate]:
        """What fits ``prefix``, typed at offset ``at`` of ``statement`` (default: its end): case-insensitive
        prefix matches before substring ones; among each, the columns of the statement's tables (or the
        tables, right after FROM or JOIN) first. After ``qualifier.`` (a table or an alias) only that
        table's columns."""
        folded = prefix.lower()
        named = tables_in(statement, self.all_keywords)
        if qualifier is not None:
            table = self.catalog.table(named.get(qualifier, qualifier)) if self.catalog else None
            if table is None:
                return []
            columns = [Candidate(c.name, c.name, "column", c.type) for c in table.columns]
            return [c for c in columns if c.name.lower().startswith(folded)] + [
                c for c in columns if folded and folded in c.name.lower() and not c.name.lower().startswith(folded)]
        used = set(named.values())
        after_from = bool(_AFTER_TABLE.search(statement, 0, len(statement) if at is None else at))
        scored = []
        for name, candidate, rank in self._all():
            if name.startswith(folded):
                quality = 0
            elif folded in name:
                quality = 1
            else:
                continue
            if candidate.kind == "column" and self._column_tables[name] & used:
                rank = RANK["statement column"]
            elif candidate.kind == "table" and after_from:
                rank = RANK["statement column"] - 1
            scored.append((quality, rank, len(name), name, candidate))
        scored.sort(key=lambda s: s[:4])
        return [_in_case(s[4], prefix) for s in scored[:limit]]


RANK = {"statement column": 1, "table": 2, "function": 3, "keyword": 4, "type": 5, "column": 6, "template": 7}
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN|INTO|TABLE|UPDATE|DESCRIBE)\s+(?:\w+\.)?(`[^`]+`|\w+)"
                        r"(?:\s+(?:AS\s+)?(\w+))?", re.IGNORECASE)
_AFTER_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|TABLE|DESCRIBE)\s+\w*$", re.IGNORECASE)


def tables_in(statement: str, keywords: frozenset[str]) -> dict[str, str]:
    """The tables a statement names (after FROM, JOIN ...), by their name and by their alias."""
    found: dict[str, str] = {}
    for match in _TABLE_REF.finditer(statement):
        table, alias = match.group(1).strip("`"), match.group(2)
        found[table] = table
        if alias and alias.upper() not in keywords:
            found[alias] = table
    return found


def _in_case(candidate: Candidate, prefix: str) -> Candidate:
    """A keyword in the case the user types it in (``sel`` completes to ``select``)."""
    if candidate.kind == "keyword" and prefix.islower():
        return Candidate(candidate.name.lower(), candidate.insert.lower(), candidate.kind, candidate.detail)
    return candidate
