"""Editing the config file from the dashboard: settings typed as text are validated with the parsers of
``exporter.config`` and written back into the YAML file, changing only those keys.

The file is edited as text, guided by PyYAML's node positions, so every other key, its comments and the
order stay as they were; when a layout is too unusual for that (flow style, anchors), the document is
dumped again without comments rather than guessed at. A write is whole or nothing (a temporary file,
then ``os.replace``), owner-only (0600: the file may hold secrets), and is undone when the result would
not load. Messages name keys, never a secret's value.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from exporter.config import (
    EMBEDDED,
    SECTIONS,
    Config,
    _duration,
    _names,
    _secret,
    _size,
    _UniqueKeyLoader,
    _user_templates,
    env_name,
    load_config,
    parse_config,
)
from exporter.errors import ConfigError
from exporter.redact import redact
from exporter.units import format_duration, format_size, parse_size

NEW_FILE = "archives.yaml"  # written in the current directory when the config had no file
_NULLS = {"", "null", "Null", "NULL", "~"}


class ConfigEditError(ConfigError):
    """Some edited settings are invalid: ``problems`` holds one sentence per key; nothing was written."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class Setting:
    """One editable key as the Config panel shows it."""

    key: str  # "section.name"
    doc: str
    text: str  # the current value, written as one would type it
    env: str | None  # the environment variable that overrides the file's value, when it is set


@dataclass(frozen=True)
class Saved:
    """What a save did: the config as re-loaded from the file, where it went, and what to tell the user."""

    config: Config
    path: Path | None
    changed: tuple[str, ...]
    messages: list[str]


def _spec(key: str):
    """The dataclass field behind ``section.name``, or a ConfigEditError naming the unknown key."""
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    found = {f.name: f for f in fields(cls)} if cls is not None else {}
    if name not in found or found[name].metadata["parse"] is _user_templates:
        raise ConfigEditError({key: f"{key}: not a setting that can be edited here"})
    return found[name]


def format_value(key: str, value: Any) -> str:
    """A value as it would be typed (``7d``, ``1MiB``, ``a, b``); a secret is never shown."""
    parse = _spec(key).metadata["parse"]
    if parse is _secret:
        return ""
    if value is None:
        return ""
    if parse is _duration:
        return format_duration(value)
    if parse in (parse_size, _size):
        return format_size(value)
    if parse is _names:
        return ", ".join(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings(config: Config, section: str = "retention", env: Mapping[str, str] | None = None) -> list[Setting]:
    """Every key of ``section`` with its doc string and current value (the panel's rows)."""
    env = os.environ if env is None else env
    rows = []
    for spec in fields(SECTIONS[section]):
        if spec.metadata["parse"] in (_user_templates, _secret):
            continue
        key = f"{section}.{spec.name}"
        rows.append(Setting(key, spec.metadata["doc"], format_value(key, getattr(getattr(config, section), spec.name)),
                            env_name(key) if env_name(key) in env else None))
    return rows


def _typed(text: str) -> Any:
    """The value the text stands for in a YAML file (``3600`` a number, ``true`` a bool, ``[a, b]`` a list),
    so that the panel accepts exactly what the file would."""
    text = text.strip()
    if text in _NULLS:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float | list) else text


def check(key: str, text: str) -> tuple[Any, str | None]:
    """Parse one typed value: (the value, None), or (None, one sentence naming the key)."""
    try:
        parse = _spec(key).metadata["parse"]
    except ConfigEditError as exc:
        return None, exc.problems[key]
    try:
        return parse(_typed(text)), None
    except ValueError as exc:
        return None, f"{key}: {redact(str(exc))}"


def validate(edits: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each edited key's value, and a sentence for each that is invalid."""
    values, problems = {}, {}
    for key, text in edits.items():
        value, problem = check(key, text)
        if problem:
            problems[key] = problem
        else:
            values[key] = value
    return values, problems


# Keys whose smaller value makes the next retention run delete data (counts as well as ages).
DESTRUCTIVE = ("retention.redis_ttl", "retention.dlq_ttl", "retention.dlq_max_length", "retention.clickhouse_ttl",
               "retention.stats_ttl", "retention.s3_archive_ttl", "retention.data_retention_max_days")


def shortened(config: Config, values: Mapping[str, Any]) -> list[str]:
    """The keys whose new value keeps less than today's: the next retention run deletes the difference,
    so a typo ("1.5" for a lifetime, in seconds) would cost data. The caller asks before saving them."""
    return [key for key in DESTRUCTIVE if key in values and values[key] < current(config, key)]


def current(config: Config, key: str) -> Any:
    """A key's value in ``config`` ("retention.redis_ttl" -> 604800.0)."""
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


def _yaml_text(text: str) -> str:
    """How the typed text is written after ``key: ``: as typed when YAML reads it back the same, else quoted."""
    text = text.strip()
    if text in _NULLS:
        return "null"
    if "\n" not in text:
        try:
            if yaml.safe_load(f"k: {text}") == {"k": _typed(text)}:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)  # a YAML double-quoted string


def shown(key: str, text: str) -> str:
    """A typed value for a message: a secret's is never repeated."""
    return "***" if _spec(key).metadata["parse"] is _secret else text.strip()


# -- editing the text ------------------------------------------------------------------------------


class _CannotEdit(Exception):
    """The layout is too unusual to edit in place; the document is dumped again instead."""


def _last_line(node: yaml.Node) -> int:
    if isinstance(node, yaml.ScalarNode):
        end = node.end_mark
        return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line
    children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
    return max([node.start_mark.line, *(_last_line(c) for c in children)])


def _insert_after(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    if line < len(lines) and not lines[line].endswith("\n"):
        lines[line] += "\n"
    return "".join([*lines[:line + 1], new, *lines[line + 1:]])


def _set_in_text(text: str, section: str, name: str, value: str) -> str:
    """``text`` with ``section.name`` set to ``value`` (YAML text), everything else untouched."""
    root = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    if root is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + f"{section}:\n  {name}: {value}\n"
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise _CannotEdit
    entry = [(k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == section]
    if not entry:
        end = "" if text.endswith("\n") else "\n"
        return f"{text}{end}{section}:\n  {name}: {value}\n"
    key_node, body = entry[-1]
    if isinstance(body, yaml.ScalarNode) and body.tag == "tag:yaml.org,2002:null" and body.value == "":
        return _insert_after(text, key_node.start_mark.line, f"  {name}: {value}\n")
    if not isinstance(body, yaml.MappingNode) or body.flow_style or not body.value:
        raise _CannotEdit
    found = [(k, v) for k, v in body.value if isinstance(k, yaml.ScalarNode) and k.value == name]
    if not found:
        indent = " " * body.value[0][0].start_mark.column
        return _insert_after(text, _last_line(body), f"{indent}{name}: {value}\n")
    key_node, old = found[-1]
    same_line = old.start_mark.line == old.end_mark.line == key_node.start_mark.line
    inline = old.style in (None, "'", '"') and old.value != "" if isinstance(old, yaml.ScalarNode) else old.flow_style
    if same_line and inline:
        return text[:old.start_mark.index] + value + text[old.end_mark.index:]
    lines = text.splitlines(keepends=True)
    first, last = key_node.start_mark.line, max(key_node.start_mark.line, _last_line(old))
    return "".join([*lines[:first], f"{' ' * key_node.start_mark.column}{name}: {value}\n", *lines[last + 1:]])


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader) if text.strip() else None


def edited_text(text: str, changes: Mapping[str, str]) -> tuple[str, bool]:
    """The file's text with ``changes`` ("section.name" -> YAML text) made, and whether its layout and
    comments were kept (else it is the data dumped again)."""
    data = _load(text)
    wanted = copy.deepcopy(data) if isinstance(data, dict) else {}
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if not isinstance(wanted.get(section), dict):
            wanted[section] = {}
        wanted[section][name] = yaml.safe_load(f"k: {value}")["k"]
    new = text
    try:
        for key, value in changes.items():
            new = _set_in_text(new, *key.split(".", 1), value)
        if _load(new) == wanted:
            return new, True
    except (_CannotEdit, yaml.YAMLError):
        pass
    return yaml.safe_dump(wanted, sort_keys=False, default_flow_style=False, allow_unicode=True), False


# -- saving ----------------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all, readable by its owner only."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _target(config: Config) -> tuple[Path, str]:
    """The file to write and the name to load it by: the config's own file, or ./archives.yaml."""
    if config.source == EMBEDDED:
        path = Path.cwd() / NEW_FILE
        return path, str(path)
    return Path(config.source), config.source


def save(config: Config, edits: Mapping[str, str], env: Mapping[str, str] | None = None) -> Saved:
    """Validate ``edits`` ("section.name" -> text as typed), write the changed ones into the config file
    and re-load it. Raises ConfigEditError (a sentence per bad key) or ConfigError; then nothing changed."""
    env = os.environ if env is None else env
    values, problems = validate(edits)
    if problems:
        raise ConfigEditError(problems)
    changed = [key for key, value in values.items() if value != current(config, key)]
    if not changed:
        return Saved(config, None, (), ["Nothing to save: every setting already has that value."])
    path, name = _target(config)
    existed = path.exists()
    try:
        before = path.read_text(encoding="utf-8") if existed else ""
        _load(before)  # a file made invalid since it was loaded is refused, not overwritten
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}); nothing was saved") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: the config file is no longer valid YAML; nothing was saved") from None
    text, kept = edited_text(before, {key: _yaml_text(edits[key]) for key in changed})
    try:
        parse_config(_load(text), name, env)  # cross-key checks, and the rest of the file as it is now
    except ConfigError as exc:
        raise ConfigEditError({changed[0]: f"{exc}; nothing was saved"}) from None
    real = path.resolve() if existed else path  # through a symlink: the file it points to is replaced
    try:
        write_private(real, text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the config file ({exc.strerror}); nothing was saved") from None
    try:
        loaded = load_config(name, env)
        wrong = [key for key in changed if current(loaded, key) != values[key] and env_name(key) not in env]
        if wrong:
            raise ConfigError(f"{wrong[0]} did not read back as written")
    except ConfigError as exc:
        if existed:
            write_private(real, before)
        else:
            path.unlink(missing_ok=True)
        raise ConfigError(f"{path}: the edited file would not load ({exc}); it was put back as it was") from None
    listed = ", ".join(f"{key} = {shown(key, edits[key])}" for key in changed)
    if existed:
        messages = [f"Saved {listed} to {path}."]
    else:
        messages = [f"Created {path} with {listed} (there was no config file; other settings keep their defaults)."]
    if config.source == EMBEDDED and existed:
        messages.append(f"{path} was found in the current directory and updated; the next start uses all of it.")
    if not kept:
        messages.append("The file's layout could not be edited in place: it was rewritten without its comments.")
    messages += [f"{key} is also set by the environment variable {env_name(key)}, which wins over the file: "
                 "the environment's value stays in effect." for key in changed if env_name(key) in env]
    return Saved(loaded, path, tuple(changed), messages)
