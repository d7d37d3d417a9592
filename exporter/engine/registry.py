"""Which backend a ``clickhouse.url`` names: ``chdb:///dir`` (embedded) or ``clickhouse[s]://`` (server).

Each backend module is imported only when its scheme is used: chdb alone is about 260 MB resident.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from exporter.engine.interface import ClickHouseBackend
from exporter.errors import ConfigError
from exporter.redact import redact


def open_backend(url: str, password: str | None = None) -> ClickHouseBackend:
    """Open the backend a ``clickhouse.url`` names: ``chdb:///dir`` or ``clickhouse://user@host:port/db``.

    Every error names the URL without its password (the URL may carry one).
    """
    parsed = urlparse(url)
    shown = redact(url)
    if parsed.scheme == "chdb":
        from exporter.engine.chdb import ChdbBackend

        path = unquote(parsed.path or "")
        if parsed.netloc:
            raise ConfigError(f"clickhouse.url {shown!r} has a host part; a local directory is written chdb:///abs/dir")
        if not path.startswith("/"):
            raise ConfigError(f"clickhouse.url {shown!r} needs an absolute data directory, e.g. chdb:///var/lib/archives")
        return ChdbBackend(path)
    if parsed.scheme in {"clickhouse", "clickhouses"}:
        from exporter.engine.server import NativeBackend

        try:
            return NativeBackend.from_url(url, password=password)
        except ConfigError as exc:
            raise ConfigError(redact(str(exc))) from None
    raise ConfigError(f"clickhouse.url {shown!r}: expected chdb:///dir or clickhouse://user@host:9000/db")
