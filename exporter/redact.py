"""Credentials never reach a message, a log line or a status report: URLs are shown without them."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

# scheme://user:password@host -> scheme://user:***@host (and scheme://:password@host -> scheme://:***@host).
# The password runs to the last '@' before a space: a config URL's password holds no raw space, '/', '?',
# '#' or '@' (exporter.urls refuses them), but quotes and any other character it may, and a URL from
# elsewhere may carry those raw too; masking a little too much is better than echoing a secret. Failing
# that, to the next '@' on the line with no '/' or quote before it: a password with a raw space.
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s'\"]*):(?:\S*@|[^@/\n'\"]*@)")
# A name that holds a secret: password, aws_secret_access_key, access_key_id, api_key, X-Amz-Credential, ...
_SECRET_NAME = r"[\w.-]*(?:password|passwd|pwd|secret|token|credential|signature|key|key_id|auth)"
# A quoted value, backslash escapes included ('Pa55\'w0rd', "Pa55\"w0rd"); an unterminated one runs to the
# end of the line.
_QUOTED = r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|['"][^\n]*"""
# ?password=... &access_key_id=... and password=... in prose (libpq-style connection strings): a bare value
# runs to the next space, since a password may hold '&', ',', ';', ')' or a quote.
_ASSIGNED_SECRET = re.compile(rf"(?i)((?:^|(?<=[?&;,\s(]))(?:{_SECRET_NAME})=)(?:{_QUOTED}|\S*)")
# {'password': '...'} in the repr of a mapping, "password": "..." in JSON.
_QUOTED_SECRET = re.compile(rf"(?i)(['\"]{_SECRET_NAME}['\"]\s*:\s*)({_QUOTED})")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and every value of a secret-named key, masked."""
    text = _USERINFO.sub(r"\1:***@", text)
    text = _ASSIGNED_SECRET.sub(r"\1***", text)
    return _QUOTED_SECRET.sub(lambda m: f"{m[1]}{m[2][0]}***{m[2][0]}", text)  # in the quotes it came in


def without(text: str, secret: str) -> str:
    """``text`` with a known secret masked as it is, percent-encoded and quoted as an SQL string (an engine's
    message may quote the statement that carried it)."""
    if not secret:
        return text
    quoted = secret.replace("\\", "\\\\").replace("'", "\\'")  # as exporter.engine.sql.sql_string writes it
    for form in sorted({secret, quoted, quote(secret, safe="")}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials in every record a handler emits, exception text included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def describe(exc: BaseException) -> str:
    """One line for an exception from any part: its message, or its type when it has none, redacted."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(redact(text).split())[:300]  # masked before it is cut: a cut password keeps no '@'
    return text or type(exc).__name__
