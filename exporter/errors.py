"""User-facing errors: each carries one clear sentence the CLI prints without a traceback."""


class ArchivesError(Exception):
    """An error caused by input or environment that the user can fix."""


class ConfigError(ArchivesError):
    """A configuration file, key or value is invalid."""


class StoreBusyError(ArchivesError):
    """The embedded warm store is owned by another process."""


class QueryError(ArchivesError):
    """A query was rejected by the engine."""


class QueryRefused(QueryError):
    """A statement the console does not run; the message says why in one sentence."""


class SinkError(Exception):
    """A sink failed to store a batch; the batch stays pending and is retried."""


class BackendUnavailable(SinkError):
    """A storage backend could not be reached; the operation may succeed when it is back."""
