"""Credentials never reach a message, a log line or a status report: URLs are shown without them."""

from __future__ import annotations

import logging
import re

# scheme://user:password@host -> scheme://user:***@host (and scheme://:password@host -> scheme://:***@host).
# The password runs to the last '@' before a space or quote: people paste passwords with unencoded '/', '?' or
# '@', and masking a little too much is better than echoing a secret.
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^\s'\"]*@")
# A name that holds a secret: password, aws_secret_access_key, access_key_id, api_key, X-Amz-Credential, ...
_SECRET_NAME = r"[\w.-]*(?:password|passwd|pwd|secret|token|credential|signature|key|key_id|auth)"
# ?password=... &access_key_id=... and "password=..." in prose (libpq-style connection strings).
_ASSIGNED_SECRET = re.compile(rf"(?i)((?:^|(?<=[?&;,\s(]))(?:{_SECRET_NAME})=)[^&#\s,;)'\"]*")
# {'password': '...'} in the repr of a mapping.
_QUOTED_SECRET = re.compile(rf"(?i)(['\"]{_SECRET_NAME}['\"]\s*:\s*['\"])[^'\"]*")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and every value of a secret-named key, masked."""
    text = _USERINFO.sub(r"\1:***@", text)
    return _QUOTED_SECRET.sub(r"\1***", _ASSIGNED_SECRET.sub(r"\1***", text))


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
    text = " ".join(text.split())[:300]
    return redact(text) if text else type(exc).__name__
