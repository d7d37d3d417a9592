"""Which backend a ``clickhouse.url`` names: ``chdb:///dir`` (embedded) or ``clickhouse[s]://`` (server).

Each backend module is imported only when its scheme is used: chdb alone is about 260 MB resident.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from exporter.config import local_url
from exporter.engine.interface import ClickHouseBackend
from exporter.errors import ConfigError


def open_backend(url: str, password: str | None = None, user: str | None = None) -> ClickHouseBackend:
    """Open the backend a ``clickhouse.url`` names: ``chdb:///dir`` or ``clickhouse://user@host:port/db``;
    ``user`` (a server's) replaces the URL's user and password.

    Every error names the URL without its password (the URL may carry one).
    """
    scheme = url.partition("://")[0]
    if scheme == "chdb":
        from exporter.engine.chdb import ChdbBackend

        try:  # checked when the config is read; again here for stores opened from code
            path = unquote(urlparse(local_url(url, "chdb")).path)
        except ValueError as exc:
            raise ConfigError(f"clickhouse.url: {exc}") from None
        return ChdbBackend(path)
    if scheme in {"clickhouse", "clickhouses"}:
        from exporter.engine.server import NativeBackend

        return NativeBackend.from_url(url, password=password, user=user)  # its errors name the URL, no password
    raise ConfigError(f"clickhouse.url: expected chdb:///dir or clickhouse://user@host:9000/db, got "
                      f"{scheme + '://' if scheme.isalpha() else 'no scheme'}")
