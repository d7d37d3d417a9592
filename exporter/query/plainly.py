"""An engine's error as the sentence a user can act on: a limit hit names its config key, an object
S3 moved to Glacier names its hour and how to restore it; anything else as the engine said it.

The owner says it (``exporter.query.layer``), since the owner knows the limits it set; a console
receives the sentence as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa

from exporter.engine.interface import Limits
from exporter.errors import QueryError


class LimitExceeded(QueryError):
    """The engine stopped a query at one of the configured limits."""


class ArchivedData(QueryError):
    """The query needs cold files that S3 has moved to an archive storage class (Glacier)."""


_ARCHIVED = re.compile(r"not valid for the object's storage class: \(in file/uri (?P<path>[^)\s]+)\)")
_HOUR = re.compile(r"year=(\d+)/month=(\d+)/day=(\d+)/hour=(\d+)")


def plainly(exc: QueryError, limits: Limits | None) -> QueryError:
    """The engine's error as the sentence a user can act on: a limit hit names its config key, an
    archived object names its hour and how to restore it; anything else as the engine said it."""
    return _named_limit(exc, limits) or _archived(exc) or exc


def _archived(exc: QueryError) -> ArchivedData | None:
    found = _ARCHIVED.search(str(exc))
    if found is None:
        return None
    path = found.group("path")
    bucket, _, key = path.partition("/")
    hour = _HOUR.search(path)
    when = f"the hour {hour.group(1)}-{hour.group(2)}-{hour.group(3)} {hour.group(4)}:00 UTC" if hour else path
    return ArchivedData(f"the query needs cold data that S3 has moved to an archive storage class: {when} "
                        f"(s3://{path}), perhaps more; restore it first (aws s3api restore-object --bucket {bucket} "
                        f"--key {key} --restore-request Days=7) or narrow the query to data younger than "
                        "retention.archive_after")


def _named_limit(exc: QueryError, limits: Limits | None) -> LimitExceeded | None:
    """The engine's words for a limit hit, as a sentence naming the config key to change."""
    if limits is None:
        return None
    text = str(exc).lower()
    if "timeout exceeded" in text and limits.max_execution_time:
        return LimitExceeded(f"the query ran longer than {limits.max_execution_time:g}s and was stopped "
                             "(query.max_execution_time): narrow it, e.g. by enqueue_time")
    if "limit for rows" in text and limits.max_rows_to_read:
        return LimitExceeded(f"the query would read more than {limits.max_rows_to_read:,} rows and was stopped "
                             "(query.max_rows_to_read): narrow it, e.g. by enqueue_time or queue")
    if "limit for result" in text and limits.max_result_rows:
        return LimitExceeded(f"the result has more than {limits.max_result_rows:,} rows (query.max_result_rows): "
                             "add a LIMIT or an aggregation")
    return None


def plainly_read(reader: pa.RecordBatchReader, limits: Limits | None) -> pa.RecordBatchReader:
    """The reader, with an error mid-stream (a limit hit, an archived object) said as ``plainly`` says it."""
    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except QueryError as exc:
            raise plainly(exc, limits) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
