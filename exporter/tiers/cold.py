"""The cold tier: ZSTD Parquet files on any fsspec filesystem (``file://`` or ``s3://``).

Layout: ``<root>/jobs/year=YYYY/month=MM/day=DD/hour=HH/<batch_id>.parquet``, hive-partitioned by the
hour of enqueue_time; compaction later rewrites an hour's files into a few sorted ones, and a naming
rule (``exporter.tiers.layout``) tells readers which files of an hour are live. The object key depends
only on the batch identity and the hour, so writing a batch again replaces each file with identical
content: replays never duplicate. No partial file is ever visible: S3 publishes an object only when its
upload completes, and on local disks the file is written under a hidden temporary name and renamed.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from exporter.config import ColdConfig
from exporter.embedded import private_dir, tighten_tree
from exporter.record import CURRENT_SCHEMA_VERSION, TIME_FIELDS, with_stored_times
from exporter.tiers.layout import superseded
from exporter.tiers.partitions import HOUR_US, split_by_time
from exporter.tiers.warm import TierStats

# Dictionary-encode only the few-valued columns: for ids and hashes the dictionary is built and then
# abandoned, which costs a third of the encode time and makes files larger.
_DICTIONARY_COLUMNS = ["queue", "tenant_id", "outcome", "error_type", "error_msg", "worker_id", "worker_version",
                       "priority", "retries", "tags", "schema_version"]


class ParquetStore:
    """Writes record batches as Parquet files partitioned by hour, and reads their summary."""

    def __init__(self, url: str, fs: fsspec.AbstractFileSystem, root: str, codec: str = "ZSTD") -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self.codec = None if codec == "NONE" else codec.lower()
        self.local = "file" in _protocols(fs)

    @classmethod
    def open(cls, config: ColdConfig, url: str, codec: str = "ZSTD") -> ParquetStore:
        """Open the store ``url`` names; a local one is made owner-only (files an earlier version left
        readable by others are tightened) and cleared of temporaries their writers left behind."""
        options: dict[str, object] = {}
        if url.startswith("s3://"):
            client: dict[str, object] = {}
            if config.endpoint_url:
                client["endpoint_url"] = config.endpoint_url
            if config.region:
                client["region_name"] = config.region
            # botocore's default (5 attempts, a 60 s connect timeout) keeps `status` and `retention show`
            # waiting seconds to minutes on a dead endpoint; bounded as the engine's S3 reads are
            # (federation._S3_SETTINGS). The pipeline retries a failed batch on its own, with backoff.
            options = {"client_kwargs": client,
                       "config_kwargs": {"connect_timeout": 3, "retries": {"max_attempts": 2, "mode": "standard"}}}
            if config.access_key_id:
                options.update(key=config.access_key_id, secret=config.secret_access_key)
        fs, root = fsspec.core.url_to_fs(url, **options)
        if "file" in _protocols(fs):
            private_dir(Path(root))
            _remove_stale_temporaries(tighten_tree(root))
        return cls(url, fs, root, codec)

    @property
    def jobs_root(self) -> str:
        return f"{self.root}/jobs"

    def write_batch(self, records: pa.Table, batch_id: str) -> list[str]:
        """Write one file per hour the batch covers; returns the keys written."""
        if records.num_rows == 0:
            return []
        written = []
        for hour, rows in split_by_time(records, HOUR_US):
            key = self._key(hour, batch_id)
            self.put(key, self._encode(rows, {b"archives.batch_id": batch_id.encode()}))
            written.append(key)
        return written

    def _key(self, hour: int, batch_id: str) -> str:
        t = datetime.fromtimestamp(hour * 3600, tz=UTC)
        return (
            f"{self.jobs_root}/year={t.year:04d}/month={t.month:02d}/day={t.day:02d}/hour={t.hour:02d}/"
            f"{batch_id}.parquet"
        )

    def _encode(self, records: pa.Table, metadata: dict[bytes, bytes], **options: object) -> pa.Buffer:
        """ZSTD Parquet with times in milliseconds, as the warm tier keeps them: a row reads the same in
        either tier (files of earlier versions hold microseconds; the engine reads both)."""
        records = with_stored_times(records)
        metadata = {**(records.schema.metadata or {}), b"archives.schema_version": CURRENT_SCHEMA_VERSION.encode(),
                    **metadata}
        sink = pa.BufferOutputStream()
        pq.write_table(records.replace_schema_metadata(metadata), sink, compression=self.codec,
                       use_dictionary=_DICTIONARY_COLUMNS, **options)
        return sink.getvalue()

    def encode_compacted(self, row_groups: Iterable[pa.Table]) -> pa.Buffer:
        """A compacted file of the given row groups (sorted by the caller, in the stored schema), written
        one at a time so that only the compressed file and one group are held. Times are deltas: sorted
        by queue and time they are small numbers (93.0 against 94.1 bytes per record on 1M of
        bench/synthetic.py's records; higher ZSTD levels made that file larger, 96 to 98)."""
        sink = pa.BufferOutputStream()
        writer = None
        for group in row_groups:
            if writer is None:
                metadata = {**(group.schema.metadata or {}), b"archives.compacted": b"1",
                            b"archives.schema_version": CURRENT_SCHEMA_VERSION.encode()}
                writer = pq.ParquetWriter(sink, group.schema.with_metadata(metadata), compression=self.codec,
                                          use_dictionary=_DICTIONARY_COLUMNS,
                                          column_encoding=dict.fromkeys(TIME_FIELDS, "DELTA_BINARY_PACKED"))
            writer.write_table(group, row_group_size=group.num_rows)
        if writer is not None:
            writer.close()
        return sink.getvalue()

    def put(self, key: str, data: pa.Buffer) -> None:
        """Store ``data`` at ``key``, whole or not at all (an S3 object appears when its upload ends; a
        local file is written under a hidden name and renamed)."""
        if not self.local:
            self.fs.pipe_file(key, data.to_pybytes())
            return
        directory, name = key.rsplit("/", 1)
        private_dir(Path(directory))
        temporary = f"{directory}/.{name}.{os.getpid()}@{socket.gethostname()}.{uuid.uuid4().hex}.tmp"
        try:
            with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(data)
            os.replace(temporary, key)
        except BaseException:  # a full disk, an interrupt: leave no partial file behind
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def close(self) -> None:
        """Nothing to release today (fsspec shares its clients); here so both tiers close alike."""

    def __enter__(self) -> ParquetStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def probe(self) -> None:
        """Fail now, with the store's own error, when it cannot be written: a missing bucket, an
        unreachable endpoint, a read-only directory. Writing would fail the same way, batch after batch."""
        if self.local:
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", self.root)
            return
        self.fs.ls(self.root.split("/", 1)[0], refresh=True)  # the bucket: FileNotFoundError if missing

    def listing(self) -> list[dict]:
        """Every Parquet file in the tier with its size and time, superseded ones included (temporary
        files are hidden)."""
        self.fs.invalidate_cache()
        if not self.fs.exists(self.jobs_root):
            return []
        found = self.fs.find(self.jobs_root, detail=True)
        return [
            info for path, info in sorted(found.items())
            if path.endswith(".parquet") and not path.rsplit("/", 1)[-1].startswith(".")
        ]

    def files(self) -> list[dict]:
        """The live Parquet files: what a reader honouring the layout's rule reads (``layout``)."""
        listing = self.listing()
        skipped: set[str] = set()
        for directory, names in by_directory(listing).items():
            skipped.update(f"{directory}/{name}" for name in superseded(names))
        return [info for info in listing if info["name"] not in skipped]

    def stats(self, files: list[dict] | None = None) -> TierStats:
        """Records, bytes and time span of the live files (``files``, when the caller has listed them)."""
        files = self.files() if files is None else files
        records, oldest, newest = 0, None, None
        for info in files:
            with self.fs.open(info["name"], "rb") as handle:
                meta = pq.ParquetFile(handle).metadata
            records += meta.num_rows
            column = meta.schema.to_arrow_schema().get_field_index("enqueue_time")
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(column).statistics
                if stats is not None and stats.has_min_max:
                    low, high = _as_utc(stats.min), _as_utc(stats.max)
                    oldest = low if oldest is None or low < oldest else oldest
                    newest = high if newest is None or high > newest else newest
        return TierStats(records, sum(int(i["size"]) for i in files), oldest, newest, f"{len(files)} files")


# ".<name>.<pid>@<host>.<uuid>.tmp"; earlier versions wrote ".<name>.<uuid>.tmp" (no writer).
_TEMPORARY = re.compile(r"^\..+?(?:\.(?P<pid>\d+)@(?P<host>[^@/]+))?\.[0-9a-f]{32}\.tmp$")
STALE_TEMPORARY_AGE = 3600.0


def by_directory(listing: list[dict]) -> dict[str, list[str]]:
    """File names per directory, from a ``listing``."""
    found: dict[str, list[str]] = {}
    for info in listing:
        directory, name = info["name"].rsplit("/", 1)
        found.setdefault(directory, []).append(name)
    return found


def _remove_stale_temporaries(files: list[os.DirEntry]) -> None:
    """Delete temporary files whose writer died (a SIGKILL, a full disk in an older version).

    Several exporters may share a directory, so a temporary is removed only when no live writer can
    own it: its name carries the writer's pid and host, and one written on this host by a pid that no
    longer exists is removed at once. Any other one (another host's, or an earlier version's without
    a writer) is removed once it is an hour old: a writer renames its file within seconds of creating
    it, and one that was stopped longer than that finds its file gone and fails the batch, which is
    retried. The hour also covers a reused pid.
    """
    host, now = socket.gethostname(), time.time()
    for entry in files:
        match = _TEMPORARY.match(entry.name)
        if match is None:
            continue
        dead = match["host"] == host and not _alive(int(match["pid"]))
        with suppress(FileNotFoundError):
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_AGE:
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _as_utc(value) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
