"""The dashboard's panels: Archive Status, Query (editor, run bar, results) and Schema & Templates.

Panels only draw what they are given; the app runs every Redis, ClickHouse or S3 call in a worker and
hands the outcome over.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, OptionList, Sparkline, Static, TextArea, Tree
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from archives_tui.background import Snapshot
from archives_tui.figures import FIGURES
from archives_tui.render import human_size
from exporter.engine.interface import Catalog
from exporter.query.run import QueryResult
from exporter.query.templates import Template
from exporter.values import python_values

STALE_AFTER = 4.0  # seconds: two refreshes; a figure read less often says how old it is
GRID_ROWS = 1000  # rows the results grid holds; the run bar says when a result had more


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


class StatusPanel(VerticalScroll):
    """Destinations, export figures with a sparkline of the rate, storage per tier, retention."""

    BORDER_TITLE = "Archive Status"

    def compose(self):
        yield OptionList(*(Option(f.label, id=f.name) for f in FIGURES), id="status-figures")
        yield Static("waiting for the first figures ...", id="status-export")
        yield Sparkline([], id="status-rate")
        yield Static("", id="status-storage")
        yield Static("", id="status-events")

    def show(self, shot: Snapshot) -> None:
        m, s = shot.exporter, shot.stream
        exporter = Text()
        if m["running"]:
            exporter.append("● exporter running\n", "green")
        else:
            exporter.append(f"● exporter stopped{': ' + m['stopped_by'] if m['stopped_by'] else ''}\n", "red")
        if shot.stream_down:
            exporter.append(f"● Redis down: {shot.stream_down}\n", "red")
        elif s is not None:
            lag_style = "green" if (s.get("lag_seconds") or 0) < 60 else "yellow"
            exporter.append(f"stream {s['length']:,} · unarchived {s.get('unarchived', 0):,} · lag ", "")
            exporter.append(f"{_ago(s.get('lag_seconds'))}\n", lag_style)
            exporter.append(f"DLQ {s['dlq_length']:,}\n", "red" if s["dlq_length"] else "")
        recent = shot.rates[-5:]  # batches land every few seconds: the last 10 s say more than the last 2
        rate = sum(recent) / len(recent) if recent else 0.0
        exporter.append(f"archived {m['archived']:,} in {m['batches']:,} batches · {rate:,.0f}/s\n")
        if m["last_batch_at"]:
            exporter.append(f"last batch {m['last_batch_records']:,} in {m['last_batch_seconds'] * 1000:,.0f} ms, "
                            f"{_ago(shot.taken - m['last_batch_at'])} ago\n", "dim")
        if m["last_error"]:
            exporter.append(f"last error {_ago(shot.taken - (m['last_error_at'] or shot.taken))} ago: "
                            f"{m['last_error'][:160]}\n", "yellow")
        self.query_one("#status-export", Static).update(exporter)
        self.query_one("#status-rate", Sparkline).data = shot.rates or [0.0]
        self.query_one("#status-storage", Static).update(_storage(shot))
        figures = self.query_one("#status-figures", OptionList)
        for i, figure in enumerate(FIGURES):
            value = shot.figures.get(figure.name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            shown = (Text(value, "red") if isinstance(value, str) else
                     Text("-", "dim") if value is None else Text(f"{value:,}{figure.unit}", "bold"))
            figures.replace_option_prompt_at_index(i, Text.assemble(f"{figure.label:<24}", shown))
        events = Text("events\n", "bold")
        for line in shot.events[-12:]:
            events.append(line + "\n", "red" if " ERROR " in line else "yellow" if " WARNING " in line else "dim")
        self.query_one("#status-events", Static).update(events)


def _storage(shot: Snapshot) -> Text:
    text = Text()
    warm, cold = shot.storage.get("warm", {}), shot.storage.get("cold", {})
    if "down" in warm:
        text.append(f"warm: down: {warm['down']}\n", "red")
    elif warm:
        text.append(f"warm  {warm['records']:,} rows · {human_size(warm['bytes'])}\n")
        text.append(f"      {warm['oldest'] or '-'} to {warm['newest'] or '-'}\n", "dim")
    if "down" in cold:
        text.append(f"cold: down: {cold['down']}\n", "red")
    elif cold:
        text.append(f"cold  {cold['files']:,} files · {human_size(cold['bytes'])}")
        text.append(f"  ({_ago(cold['age'])} ago)\n" if cold["age"] >= STALE_AFTER else "\n", "dim")
    last = shot.last_retention
    if last:
        when = datetime.fromtimestamp(last["started_at"], UTC).strftime("%H:%M UTC")
        refused = sum(len(t["refused"]) for t in last.get("tiers", []))
        text.append(f"retention ran {when}" + (f", {refused} refused" if refused else "") + "\n",
                    "yellow" if refused else "dim")
    return text


class Chart(PlotextPlot):
    """The results as a chart; it takes focus, so its keys (v: back to the table) reach the app."""

    can_focus = True


class QueryPanel(Vertical):
    """The SQL editor, the run bar (elapsed, tiers, rows) and the results grid."""

    BORDER_TITLE = "Query"

    shown: pa.Table | None = None  # the rows the grid holds, for inspecting a cell whole

    def compose(self):
        yield TextArea.code_editor("SELECT queue, outcome, count() AS jobs\nFROM jobs\n"
                                   "WHERE enqueue_time >= now() - INTERVAL 1 DAY\nGROUP BY queue, outcome\n"
                                   "ORDER BY jobs DESC", language="sql", id="editor", soft_wrap=False)
        yield Static("F5 / Ctrl+J run · Esc cancel", id="runbar")
        yield DataTable(id="results", zebra_stripes=True)
        yield Chart(id="chart")

    def statement(self) -> str:
        """The selection, or the statement under the cursor (statements are split at ';')."""
        editor = self.query_one("#editor", TextArea)
        start, end = self.statement_span()
        return editor.text[start:end].strip()

    def statement_span(self) -> tuple[int, int]:
        """Offsets of the selection, or of the statement under the cursor, in the editor's text."""
        editor = self.query_one("#editor", TextArea)
        text = editor.text
        if editor.selected_text.strip():
            first, last = sorted((editor.selection.start, editor.selection.end))
            return _offset(text, first), _offset(text, last)
        offset = _offset(text, editor.cursor_location)
        start = text.rfind(";", 0, offset) + 1
        end = text.find(";", offset)
        return start, end if end >= 0 else len(text)

    def replace_statement(self, sql: str) -> None:
        editor = self.query_one("#editor", TextArea)
        start, end = self.statement_span()
        leading = editor.text[start:end][: len(editor.text[start:end]) - len(editor.text[start:end].lstrip())]
        editor.replace(leading + sql, _location(editor.text, start), _location(editor.text, end))

    def show_text(self, title: str, text: str) -> None:
        """A plan or other text in the results grid, a row per line."""
        self.shown = None
        grid = self.query_one("#results", DataTable)
        grid.clear(columns=True)
        grid.add_column("", key="text")
        for line in text.splitlines():
            grid.add_row(line)
        self.query_one("#runbar", Static).update(Text(title, "green"))

    def running(self, sql: str) -> None:
        self.query_one("#runbar", Static).update(Text(f"running … {sql.splitlines()[0][:60]}", "yellow"))

    def show(self, result: QueryResult) -> None:
        table = result.table if result.table is not None else pa.table({})
        self.shown = table.slice(0, GRID_ROWS)
        self.query_one("#chart", PlotextPlot).remove_class("-shown")
        grid = self.query_one("#results", DataTable)
        grid.remove_class("-hidden")
        grid.clear(columns=True)
        for name in table.column_names:
            grid.add_column(name, key=name)
        shown = table.slice(0, GRID_ROWS)
        columns = [python_values(shown.column(i)) for i in range(shown.num_columns)]
        for row in zip(*columns, strict=True):
            grid.add_row(*(_cell(v) for v in row))
        tiers = "+".join(result.tiers) or "-"
        count = f"{result.rows:,} rows" if result.rows <= GRID_ROWS else f"first {GRID_ROWS:,} of {result.rows:,} rows"
        self.query_one("#runbar", Static).update(Text(
            f"{count} in {result.elapsed:.2f}s · {tiers} · {result.stats.rows_read:,} rows, "
            f"{human_size(result.stats.bytes_read)} read", "green"))

    def cell(self, row: int, column: int) -> tuple[str, str]:
        """A result cell's column name and whole value, as text."""
        if self.shown is None or column >= self.shown.num_columns:
            grid = self.query_one("#results", DataTable)
            return "", str(grid.get_cell_at((row, column)))
        value = python_values(self.shown.column(column).slice(row, 1))[0]
        return self.shown.column_names[column], "NULL" if value is None else str(value)

    def toggle_chart(self) -> str | None:
        """Results table ⇄ chart (a time column on x, up to five numeric columns as series); why not,
        when the result has no such shape."""
        grid, chart = self.query_one("#results", DataTable), self.query_one("#chart", PlotextPlot)
        if chart.has_class("-shown"):
            chart.remove_class("-shown")
            grid.remove_class("-hidden")
            grid.focus()
            return None
        table = self.shown
        times = [n for n, t in zip(table.column_names, table.schema.types, strict=True)
                 if pa.types.is_timestamp(t) or pa.types.is_date(t)] if table is not None else []
        numbers = [n for n, t in zip(table.column_names, table.schema.types, strict=True)
                   if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                   ] if table is not None else []
        if not times or not numbers or table.num_rows < 2:
            return "a chart needs a time column, a numeric column and two rows or more"
        ordered = table.sort_by(times[0])
        x = [v.strftime("%Y-%m-%d %H:%M:%S") for v in ordered.column(times[0]).to_pylist()]
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.date_form("Y-m-d H:M:S")
        plt.title(f"{', '.join(numbers[:5])} by {times[0]} ({len(x):,} points)")
        for name in numbers[:5]:
            plt.plot(x, [float(v) if v is not None else 0.0 for v in ordered.column(name).to_pylist()], label=name)
        chart.add_class("-shown")
        grid.add_class("-hidden")
        chart.focus()  # v again goes back (the editor would take it as a letter)
        chart.refresh()
        return None

    def exported(self, result: QueryResult, path: str) -> None:
        tiers = "+".join(result.tiers) or "-"
        self.query_one("#runbar", Static).update(Text(
            f"exported {result.rows:,} rows to {path} in {result.elapsed:.2f}s · {tiers}", "green"))

    def failed(self, message: str) -> None:
        self.query_one("#results", DataTable).clear(columns=True)
        self.query_one("#runbar", Static).update(Text(message, "red"))


def _offset(text: str, location: tuple[int, int]) -> int:
    row, column = location
    return sum(len(line) + 1 for line in text.split("\n")[:row]) + column


def _location(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n"), len(before) - (before.rfind("\n") + 1)


def _cell(value) -> Text | str:
    """A value as the grid shows it: numbers right-aligned with separators, times in UTC, maps as
    key=value, NULL as a muted symbol."""
    if value is None:
        return Text("∅", "dim")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return Text(f"{value:,}", justify="right")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


class SchemaPanel(VerticalScroll):
    """Tables with their columns and types, and the query templates (Enter loads one)."""

    BORDER_TITLE = "Schema & Templates"

    def compose(self):
        tree: Tree[str] = Tree("archive", id="schema-tree")
        tree.show_root = False
        yield tree

    def show(self, catalog: Catalog, templates: dict[str, Template]) -> None:
        tree = self.query_one("#schema-tree", Tree)
        tree.clear()
        tables = tree.root.add("Tables", expand=True)
        for table in sorted((t for t in catalog.tables if not t.name.startswith(".")), key=lambda t: t.name):
            node = tables.add(f"{table.name} [dim]{table.engine}[/]", data=f"table:{table.name}")
            for column in table.columns:
                node.add_leaf(f"{column.name} [dim]{column.type}[/]", data=f"column:{column.name}")
        found = tree.root.add("Templates", expand=True)
        for template in templates.values():  # the seed's titles carry their [1]-[5]
            found.add_leaf(Text(template.title), data=f"template:{template.name}")
