"""Configuration: one YAML file with the seed's keys, defaults from the seed, env overrides.

Resolution order: ``--config FILE``, then ``$ARCHIVES_CONFIG``, then ``./archives.yaml``, then the
embedded defaults (everything under the XDG data directory). Any key may be overridden by an
environment variable ``ARCHIVES_<SECTION>_<KEY>`` (e.g. ``ARCHIVES_CLICKHOUSE_PASSWORD``), which is how
secrets stay out of files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter import urls
from exporter.errors import ConfigError
from exporter.redact import redact
from exporter.units import parse_duration, parse_size


def _int(minimum: int = 0, maximum: int = 2**63 - 1) -> Callable[[Any], int]:
    """A whole number in range (the engine's settings are 64-bit: a larger one fails every query)."""
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {number}")
        if number > maximum:
            raise ValueError(f"expected an integer <= {maximum:,}, got {number:,}")
        return number

    return parse


def _fraction(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number between 0 and 1, got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ValueError(f"expected a number between 0 and 1, got {value!r}")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None or value == "" else _text(value)


def _names(value: Any) -> tuple[str, ...]:
    """A list of names, in YAML or as comma-separated text (from the environment)."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(i.strip() for i in items)


def _secret(value: Any) -> str | None:
    """A password or key: validated like text, but its value never appears in an error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("expected a text value (the value given is not shown: it is a secret)")
    return str(value)


def _duration(value: Any) -> float:
    """A duration that must be positive: none of ours means anything at zero (a zero flush interval or
    retry backoff spins, a zero claim_idle steals batches other exporters are writing, a zero TTL deletes
    everything)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {value!r}")
    return seconds


def _size(value: Any) -> int:
    """A size that must be positive (a zero batch or record limit would stop the export)."""
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"must be larger than zero, got {value!r}")
    return size


def _choice(*options: str, fold: Callable[[str], str] = str.upper) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = fold(str(value))
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return text

    return parse


def _url(*schemes: str) -> Callable[[Any], str | None]:
    """A URL with one of ``schemes``, checked as its clients will read it (``exporter.urls``): errors name
    only its scheme, since any other part of it may be a password."""
    def parse(value: Any) -> str | None:
        if value is None or value == "":
            return None
        text = str(value)
        scheme = text.split("://", 1)[0] if "://" in text else ""
        if scheme not in schemes:
            expected = " or ".join(s + "://" for s in schemes)
            valid = re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", scheme)
            got = f"one starting with {scheme + '://'!r}" if valid else "no scheme"
            raise ValueError(f"expected a URL starting with {expected}, got {got}")
        if scheme in _LOCAL_SCHEMES:
            return local_url(text, scheme)
        if scheme in _KEYED_SCHEMES:
            if urls.has_credentials(text):
                raise ValueError(f"an {scheme}:// URL takes no user or password: the cold tier's keys are "
                                 "cold.access_key_id and cold.secret_access_key (or their environment variables)")
            urls.check_host(text)
            return text
        urls.credentials(text)
        return text

    return parse


_LOCAL_SCHEMES = {"chdb", "file"}
_KEYED_SCHEMES = {"s3", "http", "https"}  # the cold tier's: its credentials are keys of their own


def local_url(text: str, scheme: str) -> str:
    """Check that a local store's URL names an absolute directory and no host.

    Without this, ``chdb://relhost/warm`` silently meant ``/warm`` and ``file://relhost/x`` meant
    ``./relhost/x``. ``file://localhost/x`` is the standard spelling of ``/x`` (RFC 8089), so it is
    accepted and rewritten to ``file:///x``. A user, password or port is refused without echoing the URL.
    """
    form = f"{scheme}:///abs/dir"
    netloc = urls.authority(text)[1]
    if scheme == "file" and netloc == "localhost":
        return "file://" + text[len("file://localhost"):]
    if netloc and ("@" in text or not netloc.replace(".", "").replace("-", "").isalnum()):
        raise ValueError(f"a local URL takes no host, user, password or port; a local directory is written {form}")
    parts = urlsplit(text)
    if netloc:
        raise ValueError(f"{redact(text)!r} has a host part {parts.hostname!r}; a local directory is written {form}")
    if not parts.path.startswith("/"):
        raise ValueError(f"{redact(text)!r} needs an absolute directory, written {form}")
    return text


def _setting(default: Any, parse: Callable[[Any], Any], doc: str) -> Any:
    """A config field: its default, the parser that validates raw YAML values, and a one-line doc."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = _setting(None, _url("redis", "rediss", "unix"), "Redis URL; empty = embedded server")


@dataclass(frozen=True)
class ClickHouseConfig:
    url: str | None = _setting(
        None, _url("chdb", "clickhouse", "clickhouses"), "chdb:///dir or clickhouse://user@host:9000/db"
    )
    password: str | None = _setting(None, _secret, "server password (or ARCHIVES_CLICKHOUSE_PASSWORD)")
    query_user: str | None = _setting(None, _optional_text,
                                      "server user for queries, with a readonly = 2 profile; empty = the url's user")
    query_password: str | None = _setting(None, _secret,
                                          "that user's password (or ARCHIVES_CLICKHOUSE_QUERY_PASSWORD)")


@dataclass(frozen=True)
class ColdConfig:
    url: str | None = _setting(None, _url("file", "s3"), "file:///dir or s3://bucket/prefix for Parquet")
    endpoint_url: str | None = _setting(None, _url("http", "https"), "S3-compatible endpoint")
    region: str | None = _setting(None, _optional_text, "S3 region")
    access_key_id: str | None = _setting(None, _secret, "S3 key (or ARCHIVES_COLD_ACCESS_KEY_ID)")
    secret_access_key: str | None = _setting(None, _secret, "S3 secret (or env)")


@dataclass(frozen=True)
class PipelineConfig:
    stream_key: str = _setting("completed_jobs", _text, "stream the job queue appends completions to")
    consumer_group: str = _setting("archive-exporter", _text, "consumer group shared by all exporters")
    consumer_name: str | None = _setting(None, _optional_text, "stable name in the group; empty = host name")
    batch_size: int = _setting(1000, _int(1), "records per batch to start with")
    min_batch_size: int = _setting(100, _int(1), "smallest batch dynamic sizing may choose")
    max_batch_size: int = _setting(100_000, _int(1), "largest batch dynamic sizing may choose")
    max_batch_bytes: int = _setting(16 * 1024 * 1024, _size, "a batch closes at this many entry bytes")
    dynamic_batching: bool = _setting(True, _bool, "grow/shrink batches toward target_latency")
    target_latency: float = _setting(2.0, _duration, "sink write latency the batch size aims at")
    flush_interval: float = _setting(30.0, _duration, "longest a record waits in a partial batch")
    worker_count: int = _setting(2, _int(1), "batches decoded and written concurrently")
    retry_attempts: int = _setting(5, _int(1), "consecutive sink failures that open its circuit breaker")
    retry_backoff: float = _setting(1.0, _duration, "first retry delay; doubles with jitter")
    max_retry_backoff: float = _setting(60.0, _duration, "cap on the retry delay")
    claim_idle: float = _setting(600.0, _duration, "idle time before another consumer's work is claimed")
    max_record_size: int = _setting(1024 * 1024, _size, "entries larger than this go to the DLQ")
    read_count: int = _setting(1000, _int(1), "entries asked for per XREADGROUP call")


@dataclass(frozen=True)
class RetentionConfig:
    redis_ttl: float = _setting(7 * 86400.0, _duration, "hot tier: how long Redis keeps job data")
    dlq_ttl: float = _setting(30 * 86400.0, _duration, "how long the dead-letter stream keeps an entry")
    dlq_max_length: int = _setting(100_000, _int(1), "the dead-letter stream keeps at most this many entries")
    protect_groups: tuple[str, ...] = _setting((), _names, "other consumer groups whose unread entries stay too")
    job_key_pattern: str | None = _setting(None, _optional_text,
                                           "keys of per-job data (e.g. job:*) given redis_ttl when they have none")
    interval: float = _setting(3600.0, _duration, "how often a running exporter applies the policy")
    clickhouse_ttl: float = _setting(365 * 86400.0, _duration, "warm tier: ClickHouse row TTL")
    stats_ttl: float = _setting(2 * 365 * 86400.0, _duration,
                                "warm tier: how long the materialized views (hourly stats, error patterns) keep")
    s3_archive_ttl: float = _setting(7 * 365 * 86400.0, _duration, "cold tier: Parquet lifetime")
    payload_sampling_rate: float = _setting(0.01, _fraction, "share of payload samples kept (failures: all)")
    payload_max_size: int = _setting(1024 * 1024, parse_size, "payloads larger than this are never sampled")
    pii_redaction_enabled: bool = _setting(True, _bool, "redact e-mails, phones, cards, IPs in samples")
    gdpr_compliance_enabled: bool = _setting(True, _bool, "enable deletion requests and their audit")
    data_retention_max_days: int = _setting(2555, _int(1), "no record is kept longer than this")
    deletion_request_ttl: float = _setting(30 * 86400.0, _duration, "deadline to honour a deletion")
    compact_after: float = _setting(3600.0, _duration,
                                    "cold tier: an hour's batch files are compacted once it ended this long ago")
    compact_target_size: int = _setting(128 * 1024 * 1024, _size, "cold tier: compacted files are about this large")
    compression_codec: str = _setting("ZSTD", _choice("ZSTD", "LZ4", "GZIP", "SNAPPY", "NONE"), "Parquet codec")
    archive_after: float = _setting(5 * 365 * 86400.0, _duration,
                                    "S3: cold objects move to archive_class after this age (lifecycle rule)")
    archive_class: str = _setting("GLACIER", _choice("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"),
                                  "S3 storage class of objects past archive_after")


_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_TEMPLATE_FIELDS = {"sql", "title", "description", "defaults"}
TEMPLATE_PARAMETERS = ("since", "until", "queue", "tenant", "min_jobs")


@dataclass(frozen=True)
class TemplateSpec:
    """A user's own query template from the config file (the query layer renders it like the seed's)."""

    name: str
    sql: str
    title: str
    description: str
    defaults: tuple[tuple[str, str], ...]


def _user_templates(value: Any) -> tuple[TemplateSpec, ...]:
    """``name: {sql, title?, description?, defaults?}``; the SQL may use {where} and {min_jobs}."""
    if isinstance(value, str):  # from the environment: YAML text
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise ValueError(f"not YAML{at}: {getattr(exc, 'problem', None) or 'unreadable'}") from None
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of template names to {sql, title, description, defaults}")
    specs = []
    for name, spec in value.items():
        if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
            raise ValueError(f"template name {name!r}: use lower-case letters, digits, '-' and '_'")
        if isinstance(spec, str):
            spec = {"sql": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("sql"), str) or not spec["sql"].strip():
            raise ValueError(f"template {name}: expected a mapping with a non-empty 'sql'")
        unknown = sorted(set(spec) - _TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"template {name}: unknown field {unknown[0]!r} "
                             f"(fields: {', '.join(sorted(_TEMPLATE_FIELDS))})")
        try:
            fields_used = {field_name for _, field_name, _, _ in string.Formatter().parse(spec["sql"]) if field_name}
        except ValueError as exc:
            raise ValueError(f"template {name}: sql: {exc} (write a literal brace as {{{{ or }}}})") from None
        if fields_used - {"where", "min_jobs"}:
            raise ValueError(f"template {name}: sql may use {{where}} and {{min_jobs}}, not "
                             f"{{{sorted(fields_used - {'where', 'min_jobs'})[0]}}}")
        defaults = spec.get("defaults") or {}
        if not isinstance(defaults, dict) or set(defaults) - set(TEMPLATE_PARAMETERS):
            raise ValueError(f"template {name}: defaults may set {', '.join(TEMPLATE_PARAMETERS)}")
        specs.append(TemplateSpec(name, spec["sql"].strip(), str(spec.get("title") or name),
                                  str(spec.get("description") or ""),
                                  tuple((str(k), str(v)) for k, v in defaults.items())))
    return tuple(specs)


@dataclass(frozen=True)
class QueryConfig:
    max_execution_time: float = _setting(300.0, _duration, "a query running longer is stopped by the engine")
    max_rows_to_read: int = _setting(10_000_000_000, _int(1), "a query reading more rows is stopped")
    max_result_rows: int = _setting(1_000_000, _int(1), "a query returning more rows is refused (add a LIMIT)")
    max_statement_bytes: int = _setting(256 << 10, _int(64), "a longer statement is refused before it is parsed")
    templates: tuple[TemplateSpec, ...] = _setting((), _user_templates,
                                                   "your own templates: name: {sql, title, description, defaults}")


def _price(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a price in dollars, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= number < float("inf"):  # nan and inf too
        raise ValueError(f"expected a price of 0 or more, got {value!r}")
    return number


@dataclass(frozen=True)
class CostConfig:
    """Storage prices per GB-month (the seed's figures), for the cost view of `retention show`."""

    redis: float = _setting(0.50, _price, "hot tier (Redis, in memory), $ per GB-month")
    warm: float = _setting(0.10, _price, "warm tier (ClickHouse on SSD), $ per GB-month")
    cold: float = _setting(0.023, _price, "cold tier (S3 Standard), $ per GB-month")
    archive: float = _setting(0.004, _price, "archive storage class (S3 Glacier), $ per GB-month")


EMBEDDED = "embedded defaults"  # Config.source when no file was found
THEMES = ("dark", "light", "high-contrast")  # archives_tui/themes/<name>.yaml


@dataclass(frozen=True)
class UiConfig:
    """The dashboard's look (NO_COLOR in the environment turns colour off whatever the theme)."""

    theme: str = _setting("dark", _choice(*THEMES, fold=str.lower), "dashboard theme: dark, light or high-contrast")
    grid_rows: int = _setting(10_000, _int(1), "rows the results grid holds (it says when a result has more; "
                                               "Ctrl+E exports them all)")


@dataclass(frozen=True)
class Config:
    redis: RedisConfig = field(default_factory=RedisConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)
    cold: ColdConfig = field(default_factory=ColdConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    source: str = EMBEDDED

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with some keys of one section changed (used by tests and the CLI)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Config) if f.name != "source"}  # type: ignore[misc]


def env_name(key: str) -> str:
    """The environment variable that overrides ``section.key``: ``ARCHIVES_SECTION_KEY``."""
    return "ARCHIVES_" + key.replace(".", "_").upper()


def _parse_section(origin: str, name: str, raw: Any, env: Mapping[str, str]) -> Any:
    cls = SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: section '{name}' must be a mapping of keys to values")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{origin}: unknown key '{name}.{key}' (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key, spec in known.items():
        variable = env_name(f"{name}.{key}")
        if variable in env:
            value, where = env[variable], f"environment variable {variable}"
        elif key in raw:
            value, where = raw[key], origin
        else:
            continue
        try:
            values[key] = spec.metadata["parse"](value)
        except ValueError as exc:
            raise ConfigError(f"{where}: '{name}.{key}': {redact(str(exc))}") from None
    try:
        section = cls(**values)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{origin}: section '{name}': {exc}") from None
    _check_section(origin, name, section)
    return section


def _check_section(origin: str, name: str, section: Any) -> None:
    """Cross-key checks a single parser cannot do."""
    if name == "pipeline" and not section.min_batch_size <= section.batch_size <= section.max_batch_size:
        raise ConfigError(
            f"{origin}: 'pipeline.batch_size' ({section.batch_size}) must lie between "
            f"'pipeline.min_batch_size' ({section.min_batch_size}) and 'pipeline.max_batch_size' "
            f"({section.max_batch_size})"
        )


def parse_config(data: Any, origin: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML document and build a Config; ``origin`` names the file in errors."""
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections (redis, pipeline, ...)")
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{origin}: unknown section '{name}' (known: {', '.join(SECTIONS)})")
    sections = {name: _parse_section(origin, name, data.get(name), env) for name in SECTIONS}
    return Config(**sections, source=origin)


def resolve_config_path(explicit: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """Apply the resolution order; ``None`` means embedded defaults."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("ARCHIVES_CONFIG"):
        return Path(env["ARCHIVES_CONFIG"])
    local = Path("archives.yaml")
    return local if local.is_file() else None


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration the CLI and TUI run with."""
    path = resolve_config_path(explicit, env)
    if path is None:
        return parse_config({}, EMBEDDED, env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_config(data, str(path), env)


class DuplicateKeyError(yaml.YAMLError):
    """A key appears twice in one mapping of a config file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a repeated key is an error: by default the last one silently wins,
    so a second ``batch_size`` further down a file would override the first unnoticed. Keys brought in by
    a merge (``<<: *base``) may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(f"duplicate key {key!r} at line {line} (first at line {first}); "
                                            "each key may appear only once")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def render_example() -> str:
    """Every key with its default and one-line comment: the text of config.example.yaml."""
    from exporter.units import format_duration, format_size

    lines = ["# Archives configuration: every key, its default, and what it does.",
             "# Any key can be set from the environment as ARCHIVES_<SECTION>_<KEY>.", ""]
    defaults = Config()
    for name in SECTIONS:
        lines.append(f"{name}:")
        section = getattr(defaults, name)
        for spec in fields(section):
            value = getattr(section, spec.name)
            if spec.metadata["parse"] is _duration:
                shown = format_duration(value)
            elif value is None:
                shown = "null"
            elif spec.metadata["parse"] is _user_templates:
                shown = "{}"
            elif spec.metadata["parse"] is _names:
                shown = "[]"
            elif isinstance(value, bool):
                shown = str(value).lower()
            elif spec.metadata["parse"] in (parse_size, _size):
                shown = format_size(value)
            else:
                shown = str(value)
            lines.append(f"  {spec.name}: {shown}  # {spec.metadata['doc']}")
        lines.append("")
    return "\n".join(lines)
