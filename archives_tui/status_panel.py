"""The Archive Status panel as cards: the export figures (each a query: o opens its rows), the
destinations with their health, storage per tier with how full its window is, retention, and the
exporter's recent events. Three panels show the cards stacked, the medium layout as a strip, the narrow
one stacked full width.

It only draws the ``Snapshot`` the app hands it; every Redis, ClickHouse or S3 read happened in a worker.
Event lines and errors quote the data (a reason, a key, an engine's message): they are appended to
``Text`` (never read as markup) through ``visible_line``, so no escape sequence reaches the terminal.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import OptionList, Sparkline, Static
from textual.widgets.option_list import Option

from archives_tui.figures import FIGURES
from archives_tui.render import human_size, visible_line
from archives_tui.status_view import elapsed
from exporter.config import RetentionConfig
from exporter.units import format_duration

if TYPE_CHECKING:
    from archives_tui.background import Snapshot

STALE_AFTER = 4.0  # seconds: two refreshes; a figure read less often says how old it is
RECENT_ERROR = 300.0  # seconds: a part that failed this recently is amber, not green
SINKS = (("redis", "Redis"), ("clickhouse", "ClickHouse"), ("parquet", "Parquet"))
OK, WARN, DOWN = ("● ", "green"), ("▲ ", "yellow"), ("✖ ", "red")  # shape and colour: readable with NO_COLOR
LABEL = max(len(f.label) for f in FIGURES) + 1


def bar(fraction: float, width: int = 12) -> str:
    """A text progress bar (readable without colour)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def count(n: int) -> str:
    """``48.1K``, ``1.20M``: a card's numbers fit a 30-column card."""
    if n < 10_000:
        return f"{n:,}"
    return f"{n / 1000:.1f}K" if n < 1_000_000 else f"{n / 1e6:.2f}M" if n < 1e9 else f"{n / 1e9:.2f}B"


class StatusPanel(VerticalScroll):
    BORDER_TITLE = "Archive Status"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._drawn: dict[str, tuple] = {}  # what each card shows: a card that did not change is not redrawn

    def compose(self):
        with Vertical(id="card-export", classes="card"):
            yield OptionList(*(Option(f.label, id=f.name) for f in FIGURES), id="status-figures")
            yield Static("waiting for the first figures ...", id="status-export")
            yield Sparkline([], id="status-rate")
        yield Static("", id="status-destinations", classes="card")
        yield Static("", id="status-storage", classes="card")
        yield Static("", id="status-retention", classes="card")
        yield Static("", id="status-events", classes="card")

    def show(self, shot: Snapshot, policy: RetentionConfig) -> None:
        self._figures(shot)
        rates = shot.rates or [0.0]
        if self.query_one("#status-rate", Sparkline).data != rates:
            self.query_one("#status-rate", Sparkline).data = rates
        events = Text("Events\n", "bold")
        for line in shot.events[-12:]:
            events.append(visible_line(line) + "\n",
                          "red" if " ERROR " in line else "yellow" if " WARNING " in line else "dim")
        for card, text in (("export", export_text(shot)), ("destinations", destinations_text(shot)),
                           ("storage", storage_text(shot, policy)), ("retention", retention_text(shot, policy)),
                           ("events", events)):
            text.rstrip()
            if self._drawn.get(card) != looks(text):  # a redraw costs a keystroke's worth of time at the P95
                self._drawn[card] = looks(text)
                self.query_one(f"#status-{card}", Static).update(text)

    def _figures(self, shot: Snapshot) -> None:
        figures = self.query_one("#status-figures", OptionList)
        for i, figure in enumerate(FIGURES):
            value = shot.figures.get(figure.name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            shown = (Text(visible_line(value), "red") if isinstance(value, str) else
                     Text("-", "dim") if value is None else
                     Text(count(value) if isinstance(value, int) and value >= 1_000_000 else f"{value:,}{figure.unit}",
                          "bold"))
            prompt = Text.assemble(f"{figure.label:<{LABEL}}", shown)
            if self._drawn.get(figure.name) != looks(prompt):
                self._drawn[figure.name] = looks(prompt)
                figures.replace_option_prompt_at_index(i, prompt)


def looks(text: Text) -> tuple:
    """What a Text shows, styles included (Text's own == compares the characters only)."""
    return text.plain, str(text.style), tuple(text.spans)


def export_text(shot: Snapshot) -> Text:
    m, s = shot.exporter, shot.stream
    text = Text()
    if m["running"]:
        text.append("● exporter running\n", "green")
    else:
        text.append(f"✖ exporter stopped{': ' + visible_line(m['stopped_by']) if m['stopped_by'] else ''}\n", "red")
    recent = shot.rates[-5:]  # batches land every few seconds: the last 10 s say more than the last 2
    rate = sum(recent) / len(recent) if recent else 0.0
    text.append(f"this run: {count(m['archived'])} archived · {rate:,.0f}/s\n")
    if m["last_batch_at"]:
        text.append(f"batch {m['last_batch_records']:,} in {m['last_batch_seconds'] * 1000:,.0f} ms\n", "dim")
    if s is not None:
        text.append(f"DLQ {s['dlq_length']:,}", "red" if s["dlq_length"] else "")
        text.append("  (d: dead letters)\n" if s["dlq_length"] else "\n", "dim")
    return text


def destinations_text(shot: Snapshot) -> Text:
    """Each part: a health dot, what it did last, and its last error."""
    m, s, now = shot.exporter, shot.stream, shot.taken
    text = Text("Destinations\n", "bold")
    errors = m.get("sink_errors") or {}
    for sink, name in SINKS:
        at, error = errors.get(sink, (None, None))
        recent = at is not None and now - at < RECENT_ERROR
        if sink == "redis" and shot.stream_down:
            text.append(*DOWN).append(f"{name:<11}down: {visible_line(shot.stream_down)}\n")
            continue
        open_breaker = shot.breakers.get(sink) == "open"
        text.append(*(DOWN if open_breaker else WARN if recent else OK))
        if sink == "redis" and s is not None:
            text.append(f"{name:<11}lag ")
            text.append(elapsed(s.get("lag_seconds")), "green" if (s.get("lag_seconds") or 0) < 60 else "yellow")
            text.append(f", {count(s.get('unarchived', 0))} to go\n")
        else:
            wrote = f"wrote {elapsed(now - m['last_batch_at'])} ago" if m["last_batch_at"] else "nothing written yet"
            text.append(f"{name:<11}{'retrying · ' if open_breaker else ''}{wrote}\n")
        if recent:
            text.append(f"  {elapsed(now - at)} ago: {visible_line(error[:120])}\n", "yellow")
    return text


def storage_text(shot: Snapshot, policy: RetentionConfig) -> Text:
    """Records and bytes per tier, and how much of its window the warm tier already holds."""
    text = Text("Storage\n", "bold")
    s, warm, cold = shot.stream, shot.storage.get("warm", {}), shot.storage.get("cold", {})
    if s is not None:
        text.append(f"hot   {count(s['length'])} entries · {human_size(s.get('stream_bytes') or 0)}\n")
    if "down" in warm:
        text.append(f"warm  down: {visible_line(warm['down'])}\n", "red")
    elif warm:
        text.append(f"warm  {count(warm['records'])} rows · {human_size(warm['bytes'])}\n")
        if warm["oldest"]:
            held = (date.fromisoformat(warm["newest"]) - date.fromisoformat(warm["oldest"])).days + 1
            window = max(1, round(policy.clickhouse_ttl / 86400))
            text.append(f"      {bar(held / window, 8)} {held:,}/{window:,} days\n", "dim")
    if "down" in cold:
        text.append(f"cold  down: {visible_line(cold['down'])}\n", "red")
    elif cold:
        text.append(f"cold  {count(cold['files'])} files · {human_size(cold['bytes'])}\n")
        if cold.get("oldest"):
            text.append(f"      from {cold['oldest']}\n      to   {cold['newest']}\n", "dim")
        if cold["age"] >= STALE_AFTER:
            text.append(f"      read {elapsed(cold['age'])} ago\n", "dim")
    return text


def retention_text(shot: Snapshot, policy: RetentionConfig) -> Text:
    """Each tier's window, the last run and the next (r: the Retention panel)."""
    text = Text("Retention", "bold").append("  (r)\n", "dim")
    text.append(f"hot {format_duration(policy.redis_ttl)} · warm {format_duration(policy.clickhouse_ttl)} · "
                f"cold {format_duration(policy.s3_archive_ttl)}\n")
    last = shot.last_retention
    if last:
        when = datetime.fromtimestamp(last["started_at"], UTC).strftime("%H:%M UTC")
        refused = sum(len(t["refused"]) for t in last.get("tiers", []))
        text.append(f"ran {when}" + (f", {refused} refused" if refused else ""), "yellow" if refused else "dim")
        due = last["started_at"] + policy.interval - shot.taken
        text.append(f" · next in {elapsed(max(0.0, due))}\n", "dim")
    else:
        text.append("first run a minute after start\n", "dim")
    return text
