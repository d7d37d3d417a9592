"""A URL's user and password, read the RFC 3986 way: percent-encoded in the URL, decoded once, here.

Raw, a few characters make a URL ambiguous: ``/``, ``?`` and ``#`` end the user info early (the rest of
the password becomes a port or a path), ``@`` leaves two candidates for where it ends, ``[`` and ``]``
mark an IPv6 host, a space or a control character is no part of a URL, and a ``%`` always starts an
escape. A URL holding one of them raw is refused in one sentence that holds no part of the URL, because
any part of it may be the password. Every other raw character (quotes, ``:`` in the password,
``!$&'()*+,;=``, ``\\``, ...) reads the same whichever way it is written, and is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

AMBIGUOUS = ("the URL cannot be read unambiguously: percent-encode its user and password (a space as %20, "
             "'#' as %23, '%' as %25, '/' as %2F, '?' as %3F, '@' as %40, '[' as %5B, ']' as %5D)")
_NOT_AN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NEVER_RAW = frozenset("@[]")


@dataclass(frozen=True)
class Credentials:
    """A URL's decoded user and password, and the URL without them (safe to hand to a client library,
    whose messages may quote it)."""

    user: str | None
    password: str | None
    address: str


def authority(url: str) -> tuple[str, str, str]:
    """``(scheme, authority, rest)`` the RFC 3986 way: the authority ends at the first '/', '?' or '#'."""
    scheme, _, after = url.partition("://")
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    return scheme, after[:end], after[end:]


def credentials(url: str) -> Credentials:
    """The user and password of a ``scheme://[user[:password]@]host[:port][/path][?query]`` URL, decoded.

    Raises ValueError, in a sentence holding no part of the URL, when the URL is ambiguous (see the module
    docstring) or its port is not a number: a password cut short by a raw '/', '?' or '#' shows up as one.
    """
    scheme, found, rest = authority(url)
    if "@" in rest or "#" in rest:  # an '@' past the host: the user info was cut short, or holds a raw '#'
        raise ValueError(AMBIGUOUS)
    userinfo, at, host = found.rpartition("@")
    if at and not _readable(userinfo):
        raise ValueError(AMBIGUOUS)
    _check_host(f"{scheme}://{host}")
    if not at:
        return Credentials(None, None, url)
    user, colon, password = userinfo.partition(":")
    return Credentials(_decode(user) or None, _decode(password) if colon else None, f"{scheme}://{host}{rest}")


def has_credentials(url: str) -> bool:
    """Whether a user or password seems written into ``url``: an '@' in its authority, or a port that is no
    number while an '@' follows (a password cut short by a raw '/', '?' or '#')."""
    if "@" in authority(url)[1]:
        return True
    try:
        check_host(url)
    except ValueError:
        return "@" in url
    return False


def check_host(url: str) -> None:
    """Refuse a URL whose host or port the client libraries would fail on later (a raw '/', '?' or '#' in
    a password leaves the rest of the user info as a port), in a sentence without the URL's text."""
    scheme, found, _ = authority(url)
    _check_host(f"{scheme}://{found.rpartition('@')[2]}")


def _readable(userinfo: str) -> bool:
    """Whether user info reads one way only: no raw '@', '[', ']', space or control character, and every
    '%' starting an escape."""
    return not (any(c in _NEVER_RAW or c.isspace() or not c.isprintable() for c in userinfo)
                or _NOT_AN_ESCAPE.search(userinfo))


def _check_host(address: str) -> None:
    try:
        urlsplit(address).port  # noqa: B018 - raises for a port that is no number or out of range
    except ValueError:
        raise ValueError("its port is not a number or its host is not valid "
                         "(a password holding '/', '?' or '#' must be percent-encoded)") from None


def _decode(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("its user or password holds a percent-escape that is not UTF-8") from None
