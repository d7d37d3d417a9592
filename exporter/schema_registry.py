"""Schema versions of the archive record and the migrations between them.

Producers stamp each record with ``schema_version``. Records of an older known version are migrated
to the current one batch-wise (a migration is a function over an Arrow table); records of an unknown
version cannot be archived faithfully and go to the dead-letter stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exporter.record import CURRENT_SCHEMA_VERSION, FIELD_NAMES, REQUIRED_FIELDS

Migration = Callable[[pa.Table], pa.Table]


@dataclass(frozen=True)
class SchemaDefinition:
    version: str
    fields: tuple[str, ...]
    required: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()


@dataclass
class SchemaRegistry:
    current: str = CURRENT_SCHEMA_VERSION
    schemas: dict[str, SchemaDefinition] = field(default_factory=dict)
    migrations: dict[str, tuple[str, Migration]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> SchemaRegistry:
        registry = cls()
        registry.register(SchemaDefinition(CURRENT_SCHEMA_VERSION, FIELD_NAMES, REQUIRED_FIELDS))
        return registry

    def register(self, schema: SchemaDefinition, migrate_to: str | None = None,
                 migration: Migration | None = None) -> None:
        """Add a version; an older one names the version it migrates to and how."""
        self.schemas[schema.version] = schema
        if migrate_to is not None:
            if migrate_to not in self.schemas or migration is None:
                raise ValueError(f"register {migrate_to} before migrating {schema.version} to it")
            self.migrations[schema.version] = (migrate_to, migration)

    def path(self, version: str) -> list[Migration] | None:
        """The migrations from ``version`` to the current version, or None when there is no path."""
        steps: list[Migration] = []
        seen = set()
        while version != self.current:
            if version in seen or version not in self.migrations:
                return None
            seen.add(version)
            version, migration = self.migrations[version]
            steps.append(migration)
        return steps

    def conform(self, records: pa.Table) -> tuple[pa.Table, pa.Array]:
        """Migrate rows of older versions to the current one, keeping row order.

        Returns the table and a mask of rows whose version is unknown (left unchanged).
        """
        versions = records.column("schema_version")
        distinct = set(pc.unique(versions).to_pylist()) - {self.current}
        unknown = sorted(v for v in distinct if self.path(v) is None)
        unknown_mask = pc.is_in(versions, value_set=pa.array(unknown, pa.string()))
        movable = sorted(distinct - set(unknown))
        if not movable:
            return records, unknown_mask
        indexed = records.append_column("__row", pa.array(np.arange(records.num_rows)))
        pieces = [indexed.filter(pc.invert(pc.is_in(versions, value_set=pa.array(movable))))]
        for version in movable:
            part = indexed.filter(pc.equal(versions, version))
            for step in self.path(version) or []:
                part = step(part)
            part = part.set_column(part.schema.get_field_index("schema_version"), "schema_version",
                                   pa.array([self.current] * part.num_rows, pa.string()))
            pieces.append(part.select(indexed.column_names).cast(indexed.schema))
        merged = pa.concat_tables(pieces).sort_by("__row").drop_columns(["__row"])
        return merged, unknown_mask
