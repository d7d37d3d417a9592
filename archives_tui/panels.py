"""The dashboard's Query panel: the SQL editor, the run bar and the results (a grid, or a chart).

Panels only draw what they are given; the app runs every Redis, ClickHouse or S3 call in a worker and
hands the outcome over.
"""

from __future__ import annotations

import pyarrow as pa
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static, TextArea
from textual_fastdatatable import ArrowBackend, DataTable
from textual_plotext import PlotextPlot

from archives_tui.editor import SqlEditor
from archives_tui.render import human_size, visible, visible_table
from exporter.query.lexer import lex, significant, statement_at, tokens
from exporter.query.run import QueryResult
from exporter.values import python_values

CELL_WIDTH = 48  # a longer cell is cut with an ellipsis; Enter shows it whole


class Chart(PlotextPlot):
    """The results as a chart; it takes focus, so its keys (v: back to the table) reach the app."""

    can_focus = True


class ResultGrid(DataTable):
    """The results: virtualized over the Arrow table itself (a million rows cost no widgets), the first
    column pinned, long cells cut. It cannot be refilled: each result mounts a new grid. Text from the
    archive is shown as text: control characters made visible, markup not read (``visible_table``)."""

    def __init__(self, table: pa.Table, rows: int) -> None:
        super().__init__(backend=ArrowBackend(visible_table(table), max_rows=rows), id="results", zebra_stripes=True,
                         fixed_columns=1 if table.num_columns > 2 else 0, max_column_content_width=CELL_WIDTH,
                         null_rep="[dim]∅[/]", render_markup=False, show_row_labels=False)


class QueryPanel(Vertical):
    """The SQL editor, the run bar (elapsed, tiers, rows) and the results grid."""

    BORDER_TITLE = "Query"

    shown: pa.Table | None = None  # the rows the grid holds, for inspecting a cell whole
    grid_rows = 10_000  # ui.grid_rows: the app sets it from the config

    def compose(self):
        yield SqlEditor("SELECT queue, outcome, count() AS jobs\nFROM jobs\n"
                        "WHERE enqueue_time >= now() - INTERVAL 1 DAY\nGROUP BY queue, outcome\n"
                        "ORDER BY jobs DESC", id="editor", soft_wrap=False)
        yield Static("F5 / Ctrl+J run · Esc cancel", id="runbar")
        yield ResultGrid(pa.table({}), 0)
        yield Static("", id="result-error")
        yield Chart(id="chart")

    def statement(self) -> str:
        """The selection, or the statement under the cursor, as written (its comments stay in the history
        and in a favorite; the query layer runs the engine's normalized text, so a trailing ``-- note``
        breaks nothing); "" when it holds nothing but whitespace and comments. A comment on the line of
        the ';' before it is the previous statement's."""
        editor = self.query_one("#editor", TextArea)
        start, end = self.statement_span()
        text = editor.text[start:end]
        if not significant(text):
            return ""
        if start > 0 and not editor.selected_text.strip():
            for token in lex(text):
                if token.kind == "space" and "\n" in token.text:
                    text = text[token.start + token.text.index("\n") + 1:]
                    break
                if token.kind not in ("space", "comment"):
                    break
        return text.strip()

    def statement_span(self) -> tuple[int, int]:
        """Offsets of the selection, or of the statement under the cursor, in the editor's text: the
        lexer's statements, so a ';' in a string, a quoted name, a comment or a heredoc ends none."""
        editor = self.query_one("#editor", TextArea)
        text = editor.text
        if editor.selected_text.strip():
            first, last = sorted((editor.selection.start, editor.selection.end))
            return _offset(text, first), _offset(text, last)
        return statement_at(text, _offset(text, editor.cursor_location))

    def replace_statement(self, sql: str) -> None:
        """F8: ``sql`` (the statement laid out) in place of the statement's text from its first token to
        its last, so the comments and blank lines around it stay."""
        editor = self.query_one("#editor", TextArea)
        start, end = self.statement_span()
        words = tokens(editor.text[start:end])
        if words:
            start, end = start + words[0].start, start + words[-1].end
        editor.replace(sql, _location(editor.text, start), _location(editor.text, end))

    async def show_text(self, title: str, text: str) -> None:
        """A plan or other text in the results grid, a row per line."""
        await self._fill(pa.table({"": text.splitlines()}))
        self.query_one("#runbar", Static).update(Text(title, "green"))

    async def _fill(self, table: pa.Table) -> None:
        """A new grid over ``table`` in the old one's place (keeping focus there), the chart hidden."""
        self.shown = table.slice(0, self.grid_rows)
        self.query_one("#chart", PlotextPlot).remove_class("-shown")
        self.query_one("#result-error").remove_class("-shown")
        old = self.query_one("#results", ResultGrid)
        had_focus = old.has_focus
        await old.remove()
        grid = ResultGrid(table, self.grid_rows)
        await self.mount(grid, before=self.query_one("#chart"))
        if had_focus:
            grid.focus()

    def running(self, sql: str) -> None:
        self.query_one("#runbar", Static).update(Text(f"running … {sql.splitlines()[0][:60]}", "yellow"))

    async def show(self, result: QueryResult) -> None:
        await self._fill(result.table if result.table is not None else pa.table({}))
        tiers = "+".join(result.tiers) or "-"
        if result.complete:
            count = f"{result.rows:,} row{'' if result.rows == 1 else 's'}"
        else:  # the engine was stopped there: how many more there were is not known
            count = f"first {result.rows:,} rows · more not fetched (Ctrl+E exports all)"
        self.query_one("#runbar", Static).update(Text(
            f"{count} in {result.elapsed:.2f}s · {tiers} · {result.stats.rows_read:,} rows, "
            f"{human_size(result.stats.bytes_read)} read", "green"))

    def cell(self, row: int, column: int) -> tuple[str, str]:
        """A result cell's column name and whole value, as text."""
        if self.shown is None or column >= self.shown.num_columns or row >= self.shown.num_rows:
            return "", ""
        value = python_values(self.shown.column(column).slice(row, 1))[0]
        return self.shown.column_names[column], "NULL" if value is None else str(value)

    def toggle_chart(self) -> str | None:
        """Results table ⇄ chart (a time column on x, up to five numeric columns as series); why not,
        when the result has no such shape."""
        grid, chart = self.query_one("#results", ResultGrid), self.query_one("#chart", PlotextPlot)
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
        plt.title(f"{', '.join(numbers[:5])} by {times[0]} ({len(x):,} points: the rows the grid holds)")
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

    def failed(self, message: str, label: str = "failed") -> None:
        """The message, whole, in the results' place (the next result replaces it); the run bar only
        says what happened (failed, refused, cancelled), so the sentence is read once."""
        self.query_one("#runbar", Static).update(Text(f"{label} (the reason is below)" if message else label, "red"))
        self.query_one("#result-error", Static).update(Text(visible(message), "red"))  # it may quote the data
        self.query_one("#result-error").add_class("-shown")
        self.query_one("#results").add_class("-hidden")
        self.query_one("#chart").remove_class("-shown")


def _offset(text: str, location: tuple[int, int]) -> int:
    row, column = location
    return sum(len(line) + 1 for line in text.split("\n")[:row]) + column


def _location(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n"), len(before) - (before.rfind("\n") + 1)
