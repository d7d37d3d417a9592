"""The project's one SQL lexer, for ClickHouse's dialect: the guard, routing, the statement splitter,
the editor's highlighting and completion all read a statement through it.

It knows what ClickHouse's own lexer knows: strings in single quotes (backslash escapes and doubled
quotes), names quoted with back quotes or double quotes, ``--``, ``//``, ``# `` and ``#!`` line
comments, nested ``/* */`` comments and ``$tag$ ... $tag$`` heredocs (a tag of ASCII letters, digits
and ``_``; with no closing tag after it, ``$tag$`` is a name, as the engine reads it). Whitespace is what
the engine skips, Unicode spaces included (it reads ``SELECT\\u3000x`` as ``SELECT x``); format characters
such as U+200B are tokens of their own (``odd``) so nothing can take them for nothing. A query parameter
``{name:Type}`` is one token when its type holds only names, numbers, parentheses and commas; otherwise
its braces are operators and what they hold is lexed as the engine lexes it (a ``;`` there splits).

Its cost is linear in the text's length whatever the text holds: every token is one anchored match
without backtracking, a heredoc's closing tag is looked up in an index of every ``$tag$`` built in one
pass (so unclosed tags cost no scan each), nested comments are scanned once, and a string, quoted name
or comment left open ends the scan with one ``open`` token running to the end (the engine refuses such
text; a highlighter colours it to the end).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# The characters ClickHouse skips as whitespace: ASCII's and the Unicode spaces its UTF-8 reader knows.
SPACES = " \t\n\r\v\f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
         "\u2028\u2029\u202f\u205f\u3000"

_SIMPLE = re.compile(rf"""
      (?P<space>[{SPACES}]+)
    | (?P<comment>(?:--|//|\#[ !])[^\n]*)
    | (?P<string>'(?:[^'\\]|\\.|'')*+')
    | (?P<quoted>"(?:[^"\\]|\\.|"")*+"|`(?:[^`\\]|\\.|``)*+`)
    | (?P<placeholder>\{{[A-Za-z_]\w*+(?::[\w \t(),.]*+)?\}})
    | (?P<number>(?:0[xX][0-9A-Fa-f_]+|0[bB][01_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][-+]?\d+)?))
    | (?P<word>[A-Za-z_$][\w$]*)
    | (?P<op>->|::|\|\||<=|>=|!=|<>|==|[-+*/%=<>!?:.,;()\[\]{{}}^&|~@])
""", re.VERBOSE | re.DOTALL | re.ASCII)
_HEREDOC = re.compile(r"\$(\w*)\$", re.ASCII)
_FRACTION = re.compile(r"\.\d+(?:[eE][-+]?\d+)?", re.ASCII)  # .5, where a '.' is no Dot
_DOLLARS = re.compile(r"\$(?=(\w*)\$)", re.ASCII)  # every $tag$, overlapping ones too ($a$a$ holds two)


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is space, comment, string, quoted, placeholder, number, word, op, odd (a
    character no token starts with) or open (an unterminated string, quoted name or ``/*`` comment, to
    the end of the text); ``start`` is its offset in the text."""

    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def upper(self) -> str:
        return self.text.upper()

    @property
    def name(self) -> str:
        """A word, or a quoted name without its quotes (escapes undone): what the engine reads."""
        if self.kind != "quoted":
            return self.text
        quote, body = self.text[0], self.text[1:-1]
        return re.sub(r"\\(.)", r"\1", body.replace(quote * 2, quote))


def lex(sql: str) -> Iterator[Token]:
    """Every token of ``sql`` in order, whitespace and comments included; the texts add up to ``sql``."""
    for kind, start, end in spans(sql):
        yield Token(kind, sql[start:end], start)


def spans(sql: str) -> Iterator[tuple[str, int, int]]:
    """What ``lex`` yields, as ``(kind, start, end)`` with no Token built: the highlighter's pace (it
    lexes the editor's whole text on every edit)."""
    position, length = 0, len(sql)
    tags: _Tags | None = None
    access = False  # a '.' here is the engine's Dot (after a name, a number, ')' or ']'), not a number's start
    while position < length:
        char = sql[position]
        kind = None
        if char in "/$.":  # the tokens a pattern cannot find alone: nested comments, heredocs, .5
            if char == "/" and sql.startswith("/*", position):
                end = _block_comment_end(sql, position + 2)
                if end < 0:
                    yield "open", position, length
                    return
                kind = "comment"
            elif char == "$" and (heredoc := _HEREDOC.match(sql, position)):
                tags = tags or _Tags(sql, position)
                end = tags.next(heredoc.group(1), heredoc.end())
                if end >= 0:  # else no heredoc: the engine reads $tag$ as (the start of) a name
                    kind, end = "string", end + len(heredoc.group())
            elif char == "." and not access and (fraction := _FRACTION.match(sql, position)):
                kind, end = "number", fraction.end()
        if kind is None:
            match = _SIMPLE.match(sql, position)
            if match is None:
                if char in "'\"`":
                    yield "open", position, length
                    return
                kind, end = "odd", position + 1
            else:
                kind, end = match.lastgroup or "op", match.end()
        yield kind, position, end
        if kind != "space" and kind != "comment":
            access = kind in _ACCESS or (kind == "op" and char in ")]")
        position = end


_ACCESS = frozenset({"word", "quoted", "number"})  # a '.' after one of these is a Dot


class _Tags:
    """Where each heredoc tag occurs in a text from some offset on, found in one pass; asked in the
    order of the text, each occurrence is passed over once."""

    def __init__(self, sql: str, start: int) -> None:
        self._at: dict[str, list[int]] = {}
        for found in _DOLLARS.finditer(sql, start):
            self._at.setdefault(found.group(1), []).append(found.start())
        self._seen: dict[str, int] = {}

    def next(self, tag: str, offset: int) -> int:
        """Where ``$tag$`` next occurs at ``offset`` or after, or -1."""
        at, i = self._at[tag], self._seen.get(tag, 0)
        while i < len(at) and at[i] < offset:
            i += 1
        self._seen[tag] = i
        return at[i] if i < len(at) else -1


def _block_comment_end(sql: str, position: int) -> int:
    """Where a ``/*`` comment ends (they nest), or -1 when it does not; each character is looked at once."""
    depth, opening, closing = 1, -1, -1
    while depth:
        if opening != -2 and opening < position:  # -2: no more openings
            opening = sql.find("/*", position)
            opening = -2 if opening < 0 else opening
        if closing < position:
            closing = sql.find("*/", position)
            if closing < 0:
                return -1
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position


def tokens(sql: str) -> list[Token]:
    """The significant tokens: whitespace and comments left out."""
    return [t for t in lex(sql) if t.kind not in ("space", "comment")]


def statements(sql: str) -> list[tuple[int, int]]:
    """The spans of the statements in ``sql``, split at each ``;`` that is neither in a string, a quoted
    name nor a comment; a span keeps its surrounding whitespace and comments."""
    found, start = [], 0
    for kind, at, end in spans(sql):
        if kind == "op" and sql[at] == ";":
            found.append((start, at))
            start = end
    found.append((start, len(sql)))
    return found


def statement_at(sql: str, offset: int) -> tuple[int, int]:
    """The span of the statement holding ``offset`` (at a ``;``, the statement it ends)."""
    for start, end in statements(sql):
        if offset <= end:
            return start, end
    return len(sql), len(sql)


def significant(sql: str) -> str:
    """``sql`` without its comments and outer whitespace: a trailing ``-- note`` cannot swallow what
    is written after the statement (a closing parenthesis, a FORMAT clause)."""
    return "".join(" " if t.kind == "comment" else t.text for t in lex(sql)).strip(SPACES)
