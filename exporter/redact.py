"""Credentials never reach a message, a log line or a status report: URLs are shown without them."""

from __future__ import annotations

import logging
import re

# scheme://user:password@host -> scheme://user:***@host (and scheme://:password@host -> scheme://:***@host).
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|secret|token|key|access_key|secret_access_key)=)[^&#\s]*")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and secret query values, masked."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\1:***@", text))


class RedactingFilter(logging.Filter):
    """Masks credentials in every record a handler emits, exception text included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
