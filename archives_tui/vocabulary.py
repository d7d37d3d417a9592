"""What the SQL editor knows about ClickHouse's words, without Textual: highlighting (the project's one
lexer, ``exporter.query.lexer``, its words named from the engine's own catalog) and the candidates for
completion (from the catalog too; a small built-in set before it arrives).

Highlights are TextArea's: per line, ``(start, end, name)`` with start and end in UTF-8 bytes of that line
(``end`` None: to the end of the line), ``name`` a key of the TextArea theme's ``syntax_styles``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exporter.engine.interface import Catalog
from exporter.query.lexer import Token, spans, tokens

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

# What each of the lexer's token kinds is coloured as; an unterminated token (open) as what it began, to
# the end; odd characters not at all. Operators are coloured, punctuation is not.
_NAMES = {"comment": "comment", "string": "string", "quoted": "variable", "placeholder": "variable.parameter",
          "number": "number", "op": "operator"}
_OPENED = {"'": "string", '"': "variable", "`": "variable", "/": "comment"}
_PUNCTUATION = frozenset(".,;()[]{}")
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
        classify, row, base, last = self.classify, 0, 0, starts[1] - 1  # the row's first and last offsets

        def column(at_row: int, offset: int) -> int:
            col = offset - starts[at_row]
            return col if plain[at_row] else len(lines[at_row][:col].encode())

        for kind, start, end in spans(text):
            if kind == "space" or kind == "odd":
                continue
            if kind == "word":
                name = classify(text[start:end], text.startswith("(", end))
                if name is None:
                    continue
            elif kind == "op":
                if text[start] in _PUNCTUATION:
                    continue
                name = "operator"
            else:
                name = _OPENED[text[start]] if kind == "open" else _NAMES[kind]
            if start > last:
                while starts[row + 1] <= start:
                    row += 1
                base, last = starts[row], starts[row + 1] - 1
            if end <= last:  # on one line, the common case
                found.setdefault(row, []).append(
                    (start - base, end - base, name) if plain[row] else (column(row, start), column(row, end), name))
                continue
            found.setdefault(row, []).append((column(row, start), None, name))
            row += 1
            while starts[row + 1] - 1 < end:
                found.setdefault(row, []).append((0, None, name))
                row += 1
            if end > starts[row]:
                found.setdefault(row, []).append((0, column(row, end), name))
            base, last = starts[row], starts[row + 1] - 1
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
        after_from = _after_table(statement if at is None else statement[:at])
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
_TABLE_WORDS = frozenset({"FROM", "JOIN", "INTO", "TABLE", "UPDATE", "DESCRIBE"})  # a table's name follows


def tables_in(statement: str, keywords: frozenset[str]) -> dict[str, str]:
    """The tables a statement names (after FROM, JOIN ...), by their name and by their alias; read from
    the lexer's tokens, so a name in a string or a comment is no table and a comment between is nothing."""
    found: dict[str, str] = {}
    words = tokens(statement)
    for i, token in enumerate(words):
        if token.kind != "word" or token.upper not in _TABLE_WORDS:
            continue
        j = i + 1
        if _named(words, j + 2) and _named(words, j) and words[j + 1].text == ".":  # database.table
            j += 2
        if not _named(words, j):
            continue
        table = words[j].name
        found[table] = table
        j += 1
        if j < len(words) and words[j].kind == "word" and words[j].upper == "AS":
            j += 1
        if j < len(words) and words[j].kind == "word" and words[j].upper not in keywords:
            found[words[j].text] = table
    return found


def _named(words: list[Token], i: int) -> bool:
    return i < len(words) and words[i].kind in ("word", "quoted")


def _after_table(text: str) -> bool:
    """Whether ``text`` ends where a table's name is typed: after FROM, JOIN ... and a space, with the
    name's first letters or none."""
    words = tokens(text)
    if words and words[-1].kind == "word" and words[-1].end == len(text):  # the word being typed
        words.pop()
    return bool(words) and words[-1].kind == "word" and words[-1].upper in _TABLE_WORDS - {"UPDATE"}


def _in_case(candidate: Candidate, prefix: str) -> Candidate:
    """A keyword in the case the user types it in (``sel`` completes to ``select``)."""
    if candidate.kind == "keyword" and prefix.islower():
        return Candidate(candidate.name.lower(), candidate.insert.lower(), candidate.kind, candidate.detail)
    return candidate
