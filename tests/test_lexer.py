"""The project's one SQL lexer (``exporter.query.lexer``) against the engine's own parse, on a corpus: the
built-in templates, statements with ``;``, quotes, escapes, doubled quotes and heredocs, every comment form
in every position, and hostile text (zero-width characters, NUL). For each text, the statements the lexer
finds are the ones the engine accepts, and each statement's significant text (comments out) reads the
same to the engine as the statement itself. And lexing is linear: counted, never timed."""

from __future__ import annotations

import pytest

from exporter.query import lexer
from exporter.query.templates import TEMPLATES, render

MULTI = "Multi-statements are not allowed"


class Engine:
    """chdb's parser, fed each text as data (hex), never as SQL."""

    def __init__(self, query) -> None:
        self._query = query
        self._known: dict[str, str | ValueError] = {}  # a piece is often its whole text, or asked again

    def format(self, sql: str) -> str:
        """The engine's one-line text of ``sql``; a ValueError with the engine's message when it refuses."""
        if sql not in self._known:
            try:
                self._known[sql] = self._query(f"SELECT formatQuerySingleLine(unhex('{sql.encode().hex()}'))")
            except RuntimeError as exc:
                self._known[sql] = ValueError(str(exc).strip().splitlines()[0])
        known = self._known[sql]
        if isinstance(known, ValueError):
            raise ValueError(str(known))
        return known


@pytest.fixture(scope="module")
def engine():
    """An in-memory chdb for this module, closed after it. A process holds one chdb path at a time; the
    conftest's stores (``warm``) and the guard's in-memory parser are each closed by the test that opened
    them, so none is open between tests."""
    import chdb

    conn = chdb.connect(":memory:")
    try:
        yield Engine(lambda sql: conn.query(sql, "TSVRaw").bytes().decode().rstrip("\n"))
    finally:
        conn.close()


def pieces(sql: str) -> list[str]:
    """The statements the lexer finds: its spans that hold more than whitespace and comments."""
    return [sql[start:end] for start, end in lexer.statements(sql) if lexer.significant(sql[start:end])]


# -- the corpus --------------------------------------------------------------------------------------------

BASES = [
    "SELECT 1",
    "SELECT 'a;b' AS x, count() FROM jobs",
    "SELECT 'it''s; -- not a comment' AS a, 'back\\'slash;' AS b, '\\\\' AS c",
    "SELECT \"semi;colon\" FROM t WHERE `back``tick;` = 'x'",
    "SELECT `a\\`;b` AS \"c\"\"d;\", \"e\\\";\" AS f",
    "SELECT $$a;b -- c /* d$$ AS h, $tag$ it's $$ ; $tag$ AS g",
    "SELECT $x$;$x$$x$, 1 AS y",  # the heredoc ends at the first $x$ after its opening; $x$ is then an alias
    "SELECT '/* ; */' AS c, '-- ;' AS d, '#!;' AS e, '// ;' AS f",
    "SELECT x$y$z, $ab, a$b$ FROM t",  # $ inside and opening names: no heredoc
    "SELECT {queue:String} AS q, {n:Array(Tuple(UInt8, String))} AS n",
    "SELECT 4 / 2, 0x1F, 1e3, 1_000, .5, -1, [1, 2][1], (1, 2).1, a::String FROM t",
    "SELECT count() FROM jobs WHERE queue = 'a\nb;c' -- end\n",
    "SELECT '''' AS x, 'a''' AS y",
    "SELECT '\\x41;\\n\\t\\0'",
]
for _name in TEMPLATES:
    BASES.append(render(_name))
    BASES.append(render(_name, {"queue": "it's; -- a /* queue", "tenant": "$$;\\"}))

COMMENTS = ["-- a line; 'with' \"quotes\" and `ticks` /*\n", "--\n", "// a line ; '\n", "# a line ; '\n",
            "#!shebang ; '\n", "/* a block ; ' \" ` $$ -- */", "/**/", "/* nested /* ; */ still ' */",
            "/*\nover ; lines\n*/"]


def with_comment_everywhere(base: str, comment: str) -> list[str]:
    """``base`` with ``comment`` before, between and after every token (a line comment ends its line)."""
    found = lexer.lex(base)
    starts = [t.start for t in found if t.kind not in ("space", "comment")] + [len(base)]
    return [base[:at] + " " + comment + " " + base[at:] for at in starts]


def single_statements() -> list[str]:
    texts = list(BASES)
    for base in [*BASES[:12], render("queue-health"), render("retention-status")]:
        for comment in COMMENTS:
            texts.extend(with_comment_everywhere(base, comment))
    texts.extend(f"{comment}{base}" for base in BASES[:3] for comment in COMMENTS)
    texts.extend(f"{base}{comment.rstrip()}" for base in BASES[:3] for comment in COMMENTS)  # the last line's
    texts.extend(f"{base};{comment}" for base in BASES[:3] for comment in COMMENTS)  # after its own ';'
    texts.extend(f"{base};;\n;" for base in BASES[:3])  # empty statements are nothing
    return texts


def multi_statements() -> list[tuple[str, int]]:
    texts = []
    pairable = [b for b in BASES if "$x$" not in b]  # its unclosed $x$ would close in the next statement
    for first in pairable:
        for second in pairable[:8]:
            texts.append((f"{first};{second}", 2))
    for comment in COMMENTS:
        texts.append((f"SELECT 1 {comment};\n{comment} SELECT 'a;b' {comment}; {comment} SELECT 3 {comment}", 3))
        texts.append((f"{comment}SELECT $$;$$;\n;{comment};SELECT 2", 2))
    texts.append(("SELECT $a$ ; SELECT 1", 2))  # no closing tag after it: a name, and two statements
    texts.append(("SELECT $a$ ; SELECT $a$", 1))  # a heredoc holding ' ; SELECT '
    texts.append(("SELECT 1 AS $a$;SELECT $b$;SELECT 2 AS $c$d", 3))
    texts.append(("SELECT 1 AS $a$b;SELECT 2", 2))
    texts.append(("SELECT {a:String} ; SELECT 2", 2))
    texts.append(("SELECT {a:Enum8('}' = 1)}; SELECT {d:DateTime(';')}; SELECT 3", 3))  # a type's strings are strings
    return texts


# Characters the engine skips as it does a space (Python's str.isspace() says no to most of them): the
# lexer keeps them as tokens of their own (odd), so they can separate tokens but never hide a ';'.
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e"]


def hostile() -> list[tuple[str, int]]:
    texts = []
    base = "SELECT 'a;b' AS x, count() FROM jobs WHERE queue = 'q'"
    for char in [*ZERO_WIDTH, "\u3000", "\xa0", "\u2028", "\x85", "\x0b", "\x0c"]:
        for at in (t.start for t in lexer.lex(base) if t.kind != "space"):
            texts.append((base[:at] + char + base[at:], 1))
        texts.append((f"SELECT 1{char};{char}SELECT 2{char}", 2))
        texts.append((f"SELECT '{char};{char}' AS x", 1))
    texts.append(("SELECT 'a\x00;b' AS x", 1))  # NUL in a string is data
    texts.append(("SELECT `a\x00;b` AS x", 1))
    texts.append(("SELECT $$\x00;$$ AS x", 1))
    texts.append(("SELECT 1 /* \x00; */", 1))
    texts.append(("SELECT 1 -- \x00;\n", 1))
    texts.append(("SELECT 1;\n" * 50, 50))
    return texts


# -- the comparison ----------------------------------------------------------------------------------------


def disagreement(engine: Engine, sql: str, expected: int) -> str | None:
    """Why the lexer and the engine disagree on ``sql``, or None."""
    found = pieces(sql)
    if len(found) != expected:
        return f"the lexer found {len(found)} statements, not {expected}"
    if expected == 1:
        try:
            engine.format(sql)
        except ValueError as exc:
            return f"the engine refused it whole: {exc}"
    else:
        try:
            engine.format(sql)
        except ValueError as exc:
            if MULTI not in str(exc):
                return f"the engine refused it whole, but not as several statements: {exc}"
        else:
            return "the engine read one statement"
    for piece in found:
        try:
            whole = engine.format(piece)
        except ValueError as exc:
            return f"the engine refused the piece {piece!r}: {exc}"
        try:
            significant = engine.format(lexer.significant(piece))
        except ValueError as exc:
            return f"the engine refused the piece's significant text {lexer.significant(piece)!r}: {exc}"
        if significant != whole:
            return f"the piece {piece!r} reads {whole!r}, its significant text {significant!r}"
    return None


def assert_agree(engine: Engine, texts: list[tuple[str, int]]) -> None:
    failed = [(sql, why) for sql, count in texts if (why := disagreement(engine, sql, count))]
    assert not failed, f"{len(failed)} of {len(texts)} disagree, e.g.:\n" + "\n".join(
        f"{sql!r}: {why}" for sql, why in failed[:10])


def test_the_lexer_agrees_with_the_engine_on_single_statements(engine):
    texts = single_statements()
    assert len(texts) > 1500
    assert_agree(engine, [(sql, 1) for sql in texts])


def test_the_lexer_splits_where_the_engine_does(engine):
    assert_agree(engine, multi_statements())


def test_hostile_text_splits_as_the_engine_reads_it(engine):
    assert_agree(engine, hostile())


def test_whatever_the_engine_cannot_lex_the_lexer_marks(engine):
    """Text the engine's lexer refuses holds an odd or an open token here: nothing the engine stops at is
    read as a clean token (the guard refuses on odd and open tokens)."""
    texts = ["SELECT 1\x00", "SELECT 1 \x00 , 2", "SELECT 1 #x", "SELECT 1 #", "SELECT é", "SELECT a\u200e",
             "SELECT 'a", "SELECT \"a", "SELECT `a", "SELECT 1 /* a", "SELECT 1 /* a /* b */", "SELECT 'a\\'",
             "SELECT $é$x$é$", "SELECT \\ 1", "SELECT 1 \u00ad"]
    for sql in texts:
        with pytest.raises(ValueError, match=r"Unrecognized token|not closed"):
            engine.format(sql)
        assert {t.kind for t in lexer.lex(sql)} & {"odd", "open"}, sql


def test_the_lexer_reads_what_the_engine_reads():
    """Token by token, the forms the corpus relies on."""
    kinds = [(t.kind, t.text) for t in lexer.lex("SELECT $a$;$a$, $b$ ; x$c$ -- d\n#!e\n{f:UInt8}")]
    assert kinds == [("word", "SELECT"), ("space", " "), ("string", "$a$;$a$"), ("op", ","), ("space", " "),
                     ("word", "$b$"), ("space", " "), ("op", ";"), ("space", " "), ("word", "x$c$"),
                     ("space", " "), ("comment", "-- d"), ("space", "\n"), ("comment", "#!e"), ("space", "\n"),
                     ("placeholder", "{f:UInt8}")]
    # a parameter's type holds no quote, ';' or comment: the braces are then operators, as the engine reads them
    assert [t.kind for t in lexer.lex("{a:x';'}")] == ["op", "word", "op", "word", "string", "op"]
    assert lexer.statement_at("SELECT 'a;b'; SELECT 2", 9) == (0, 12)
    assert lexer.statement_at("SELECT 'a;b'; SELECT 2", 13) == (13, 22)
    assert lexer.significant("  SELECT 1 -- note\n") == "SELECT 1"


# -- linear ----------------------------------------------------------------------------------------------


class Counting:
    """A compiled pattern that counts the calls made on it."""

    def __init__(self, pattern) -> None:
        self.pattern, self.calls = pattern, 0

    def __getattr__(self, name):
        method = getattr(self.pattern, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return method(*args, **kwargs)

        return counted


N = 100_000
LONG = {
    "unclosed heredoc tags": ("$a$ " * N, False),
    "distinct unclosed heredoc tags": ("".join(f"$x{i}$ " for i in range(N)), False),
    "dollars": ("$" * N, False),
    "heredocs": ("$t$ ; $t$" * N, False),
    "overlapping tags": ("$1$$2$$3$" * N, False),
    "line comments": ("-- ;\n" * N, False),
    "block comments": ("/* */" * N, False),
    "nested openings": ("/*" * N, True),
    "a string of doubled quotes": ("'" + "a''" * N, True),
    "a string of escapes": ("'" + "\\'" * N, True),
    "a quoted name": ("`" + "a``;" * N, True),
    "parameters": ("{a:(" * N, False),
}


@pytest.mark.parametrize("name", list(LONG))
def test_lexing_is_linear_in_the_texts_length(monkeypatch, name):
    """Long texts (100,000 units): the pattern calls grow with the number of tokens, never with the square
    of the length (a heredoc's closing tag is looked up in an index built in one pass, so 100,000 distinct
    unclosed tags cost no scan each; the patterns never backtrack), and an unclosed string, name or
    comment ends the scan with one ``open`` token."""
    sql, opens = LONG[name]
    counters = {}
    for pattern in ("_SIMPLE", "_HEREDOC", "_DOLLARS"):
        counters[pattern] = Counting(getattr(lexer, pattern))
        monkeypatch.setattr(lexer, pattern, counters[pattern])
    found = list(lexer.lex(sql))
    assert "".join(t.text for t in found) == sql
    calls = sum(c.calls for c in counters.values())
    assert calls <= 2 * len(found) + 2, (calls, len(found))
    if opens:
        assert [t.kind for t in found] == ["open"]  # the scan stopped at the first character
