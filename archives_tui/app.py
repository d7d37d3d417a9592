"""`archives tui`: the dashboard. One widget tree for every width: the screen's breakpoint class decides
what shows (three panels at >= 120 columns, status cards over the query at 81-119, tabs at <= 80),
so resizing never rebuilds a widget and the editor, results and cursor stay as they were. Retention
and Config are tabs in the narrow layout; in the others they take the query's place while brought
forward (R, C, F2), until F3 brings the query back.

The exporter and the retention schedule run in threads (``background``); status is read in a worker
every refresh; a query runs in an ``Execution`` (its own thread, cancellable) that a worker waits on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Tab, Tabs, TextArea, Tree

from archives_tui.config_panel import ConfigPanel
from archives_tui.editor import SqlEditor
from archives_tui.figures import FIGURES
from archives_tui.panels import QueryPanel, ResultGrid
from archives_tui.render import visible_line
from archives_tui.retention_panel import RetentionPanel
from archives_tui.schema_panel import SchemaPanel
from archives_tui.screens import CellScreen, DeadLettersScreen, ExportScreen, HistoryScreen, NameScreen
from archives_tui.status_panel import StatusPanel
from archives_tui.theming import load_themes
from exporter.config import Config
from exporter.embedded import data_dir
from exporter.errors import QueryError, QueryRefused
from exporter.query import writers
from exporter.query.history import QueryHistory
from exporter.query.run import Execution, Limits, QueryCancelled, QueryResult, Taken, first_page
from exporter.query.templates import available, catalog, render
from exporter.redact import describe

if TYPE_CHECKING:  # the exporter's modules load in the worker that opens the archive, after the first paint
    from archives_tui.background import Background, Snapshot

def after_typing(action: Callable[[ArchivesApp], None]) -> Callable[[ArchivesApp], None]:
    """The action reads the statement once the editor has taken every key queued before it: F5 is the
    app's key and would otherwise run ahead of the keys just typed (a paste, a burst over SSH)."""
    @functools.wraps(action)
    def deferred(app: ArchivesApp) -> None:
        app.query_one(SqlEditor).call_later(action, app)

    return deferred


def _label(exc: BaseException) -> str:
    """What the run bar says of an outcome whose sentence is shown below it."""
    return "cancelled" if isinstance(exc, QueryCancelled) else "refused" if isinstance(exc, QueryRefused) else "failed"


PANELS = ("status", "query", "schema", "retention", "config")  # the narrow layout's tabs, in order
ASIDE = ("retention", "config")  # wide and medium: shown in the query's place while brought forward
REFRESH_SECONDS = 2.0


class ArchivesApp(App):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses elsewhere find it too
    TITLE = "Archives"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (81, "-medium"), (120, "-wide")]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("f5", "run", "Run", priority=True),
        Binding("ctrl+enter", "run", "Run", show=False, priority=True),  # where the terminal tells it apart
        Binding("ctrl+j", "run", "Run", show=False, priority=True),  # what most terminals send for Ctrl+Enter
        Binding("escape", "cancel", "Cancel the query, or leave the editor", show=False),
        Binding("ctrl+a", "select_all", "Select all", show=False, priority=True),
        Binding("f6", "explain", "Explain", priority=True),
        Binding("f8", "format", "Format", show=False, priority=True),
        Binding("r", "from_status('retention')", "Retention", show=False),
        Binding("c", "from_status('config')", "Config", show=False),
        Binding("d", "dead_letters", "Dead letters", show=False),
        Binding("o", "open_figure", "Open the figure's rows", show=False),
        Binding("v", "chart", "Chart", show=False),
        Binding("f7", "favorite", "Favorite", show=False, priority=True),
        Binding("ctrl+e", "export", "Export", show=False, priority=True),
        Binding("shift+f7", "history", "History", show=False),
        Binding("ctrl+up", "recall(1)", "Previous query", show=False, priority=True),
        Binding("ctrl+down", "recall(-1)", "Next query", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "show_panel('config')", "Config", priority=True),  # the panel keys: see action_show_panel
        Binding("f9", "toggle_sides", "Full width", show=False),
        Binding("f10", "command_palette", "Menu (every action)", show=False),
        Binding("tab", "next_panel(1)", "Next panel", show=False, priority=True),
        Binding("shift+tab", "next_panel(-1)", "Previous panel", show=False, priority=True),
        Binding("y", "copy('cell')", "Copy cell", show=False),
        Binding("Y", "copy('row')", "Copy row", show=False),
        Binding("f3", "show_panel('query')", "Query", priority=True),
        Binding("f4", "show_panel('schema')", "Schema", priority=True),
        Binding("ctrl+r", "refresh_status", "Refresh", show=False),
        *(Binding(f"{modifier}+{i}", f"show_panel('{name}')", name.title(), show=False, priority=True)
          for modifier in ("ctrl", "alt") for i, name in enumerate(PANELS, 1)),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, config: Config, demo: bool = False, background: Background | None = None,
                 theme: str | None = None) -> None:
        super().__init__()
        self.config = config
        themes = load_themes()
        for found in themes.values():
            self.register_theme(found)
        self.theme = themes[theme or config.ui.theme].name
        self.demo = demo
        self.background = background
        self.execution: Execution | None = None
        self.history = QueryHistory(data_dir())
        self.recalled = 0  # how far back Ctrl+Up went in the history
        self.panel = "status"  # the panel brought forward last, or holding the focus: where Tab goes on from

    def compose(self) -> ComposeResult:
        yield Tabs(*(Tab(name.title(), id=f"tab-{name}") for name in PANELS), id="tabs")
        with Container(id="panels"):
            yield StatusPanel(id="status", classes="-active")
            yield QueryPanel(id="query")
            yield RetentionPanel(id="retention")  # in the query's column when brought forward
            yield ConfigPanel(id="config")
            yield SchemaPanel(id="schema")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QueryPanel).grid_rows = self.config.ui.grid_rows
        self.start_background()
        self.set_interval(REFRESH_SECONDS, self.action_refresh_status)

    # -- background ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="start")
    def start_background(self) -> None:
        """Open the parts and start exporting (slow: chdb, S3) without holding up the first paint."""
        if self.background is None:
            from archives_tui.background import Background

            try:
                self.background = Background(self.config, self.demo)
            except Exception as exc:  # a part down: the panel says which, the app stays up
                self.call_from_thread(self.notify, visible_line(describe(exc)), title="cannot start",
                                      severity="error", timeout=30, markup=False)  # an error may quote data
                return
        self.background.start()
        self.call_from_thread(self.action_refresh_status)
        self.load_schema()

    def action_refresh_status(self) -> None:
        if self.background is not None:
            self.read_status()

    @work(thread=True, exclusive=True, group="status")
    def read_status(self) -> None:
        shot = self.background.snapshot()
        self.call_from_thread(self._show_status, shot)

    def _show_status(self, shot: Snapshot) -> None:
        self.query_one(StatusPanel).show(shot, self.config.retention)

    @work(thread=True, exclusive=True, group="schema")
    def load_schema(self) -> None:
        own = self.config.query.templates
        found = catalog(self.background.backend, own)
        try:
            held = {row["v"]: row["n"] for row in self.background.backend.query_arrow(
                "SELECT schema_version AS v, count() AS n FROM jobs_archive GROUP BY v").to_pylist()}
        except Exception:  # the versions are a detail; the tables and templates still show
            held = None
        self.call_from_thread(self.query_one(SchemaPanel).show, found, available(own),
                              self.background.pipeline.registry, held)
        self.call_from_thread(self.query_one("#editor").use_catalog, found, available(own))  # SqlEditor

    # -- layout ----------------------------------------------------------------------------------

    def action_show_panel(self, name: str) -> None:
        """Bring a panel forward: in tabs, switch to it; in every layout, focus it, at once, so the keys
        typed right after reach it. The panel keys (F2, F3, F4, Ctrl/Alt+digit) are priority bindings,
        run when the app first reads them: a plain binding runs only once the key has gone down to the
        focused widget and bubbled back, and the keys typed meanwhile had gone to that widget already.
        The focus is set here rather than by ``focus()``, which sets it after the messages already queued."""
        if self.screen is not self.screen_stack[0]:  # a modal's keys are its own (callbacks run after it closed)
            return
        self.query_one("#tabs", Tabs).active = f"tab-{name}"
        self._activate(name)
        target = {"query": "#editor", "schema": "#schema-tree", "status": "#status-figures"}.get(name, f"#{name}")
        self.screen.set_focus(self.query_one(target))
        if name == "retention":
            self.query_one(RetentionPanel).action_load()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        self._activate(event.tab.id.removeprefix("tab-"))

    def _activate(self, name: str) -> None:
        """Mark the panel the narrow layout shows; an aside panel takes the query's place elsewhere."""
        self.panel = name
        panels = self.query_one("#panels")
        for panel in panels.children:
            panel.set_class(panel.id == name, "-active")
        if name in ASIDE or name == "query":
            panels.set_class(name in ASIDE, "-aside")

    def action_next_panel(self, step: int) -> None:
        """Tab / Shift+Tab: the next / previous panel on screen (a tab in the narrow layout)."""
        shown = list(PANELS) if self.screen.has_class("-narrow") else [
            p.id for p in self.query_one("#panels").children if p.display]
        i = shown.index(self.panel) if self.panel in shown else -1
        self.action_show_panel(shown[(i + step) % len(shown)])

    def on_descendant_focus(self, event) -> None:
        """A click or a key moved the focus into a panel: Tab goes on from there. The event arrives after
        the keys queued meanwhile; one for a widget that has lost the focus since is stale."""
        if event.widget is not self.screen_stack[0].focused:
            return
        panels = self.screen_stack[0].query_one("#panels")
        self.panel = next((w.id for w in event.widget.ancestors_with_self if w.parent is panels), self.panel)

    def action_help(self) -> None:
        """F1 or ?: the keys of the focused area beside it; pressed again, gone."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_from_status(self, name: str) -> None:
        """R / C in the status panel: the Retention or Config panel."""
        self.action_show_panel(name)

    def action_toggle_sides(self) -> None:
        """F9: the editor and results full width, or the side panels back."""
        self.query_one("#panels").toggle_class("-full")

    # -- queries ---------------------------------------------------------------------------------

    def _statement(self) -> str:
        """The statement a key acts on (F5, F6, F7, F8, Ctrl+E); the completion list closes, as it does
        for any key the editor sees (these are the app's, so the editor never does)."""
        self.query_one(SqlEditor).close_completions()
        return self.query_one(QueryPanel).statement()

    @after_typing
    def action_run(self) -> None:
        if self.background is None:
            self.notify("the archive is still opening", severity="warning")
            return
        if self.execution is not None and not self.execution.done:
            self.notify("a query is running: Esc cancels it", severity="warning")
            return
        panel = self.query_one(QueryPanel)
        sql = self._statement()
        if not sql:
            return
        panel.running(sql)
        page = self.config.ui.grid_rows  # the first page at once; Ctrl+E exports the whole result
        self.execution = Execution(self.background.queries, sql, Limits(block_rows=page), self.history,
                                   consume=first_page(page))
        self.recalled = 0
        self.wait_for_query(self.execution)

    @work(thread=True, exclusive=True, group="query")
    def wait_for_query(self, execution: Execution) -> None:
        try:
            result: QueryResult | tuple[str, str] = execution.wait()
        except QueryError as exc:
            result = (_label(exc), str(exc))
        except Exception as exc:  # an engine fault: said in place, the app stays up
            result = ("failed", f"{type(exc).__name__}: {exc}")
        self.call_from_thread(self._show_result, result)

    async def _show_result(self, result: QueryResult | tuple[str, str]) -> None:
        panel = self.query_one(QueryPanel)
        if isinstance(result, tuple):
            panel.failed(result[1], result[0])
        else:
            await panel.show(result)

    def action_cancel(self) -> None:
        """Esc: cancel the running query; else leave the editor for the results."""
        if self.execution is not None and not self.execution.done:
            self.run_worker(self.execution.cancel, thread=True, group="cancel")
        elif isinstance(self.focused, TextArea):
            self.query_one("#results", ResultGrid).focus()

    def action_select_all(self) -> None:
        self.query_one("#editor", TextArea).select_all()

    @after_typing
    def action_explain(self) -> None:
        sql = self._statement()
        if self.background is not None and sql:
            self.explain_statement(sql)

    @work(thread=True, exclusive=True, group="query")
    def explain_statement(self, sql: str) -> None:
        try:
            plan = self.background.queries.explain(sql)
            self.call_from_thread(self.query_one(QueryPanel).show_text, "plan (F5 runs the statement)", plan)
        except Exception as exc:  # a refusal or an engine error: said in place
            self.call_from_thread(self.query_one(QueryPanel).failed, str(exc), _label(exc))

    @after_typing
    def action_format(self) -> None:
        sql = self._statement()
        if self.background is not None and sql:
            self.format_statement(sql)

    @work(thread=True, exclusive=True, group="format")
    def format_statement(self, sql: str) -> None:
        try:
            laid_out = self.background.queries.pretty(sql)
        except Exception as exc:
            self.call_from_thread(self.query_one(QueryPanel).failed, str(exc), _label(exc))
            return
        self.call_from_thread(self.query_one(QueryPanel).replace_statement, laid_out)

    @after_typing
    def action_export(self) -> None:
        """Ctrl+E: the statement's whole result to a file, streamed (no row cap; time and rows-read
        limits hold), written whole or not at all, owner-only."""
        sql = self._statement()
        if self.background is None or not sql:
            return
        if self.execution is not None and not self.execution.done:
            self.notify("a query is running: Esc cancels it", severity="warning")
            return
        default = str(Path.cwd() / f"archives-{time.strftime('%Y%m%d-%H%M%S')}.csv")

        def start(choice: tuple[str, str] | None) -> None:
            if choice is None:
                return
            fmt, path = choice

            def write(reader) -> Taken:
                with writers.whole_file(Path(path).expanduser()) as out:
                    return Taken(None, writers.write_batches(reader, fmt, out)[0])

            self.query_one(QueryPanel).running(f"exporting to {path}")
            self.execution = Execution(self.background.queries, sql, None, self.history, consume=write)
            self.wait_for_export(self.execution, path)

        self.push_screen(ExportScreen(default), start)

    @work(thread=True, exclusive=True, group="query")
    def wait_for_export(self, execution: Execution, path: str) -> None:
        panel = self.query_one(QueryPanel)
        try:
            result = execution.wait()
        except (QueryError, OSError) as exc:
            self.call_from_thread(panel.failed, f"export to {path} failed, nothing written: {exc}", _label(exc))
            return
        self.call_from_thread(panel.exported, result, path)

    def action_chart(self) -> None:
        """v in the results: the table ⇄ a chart of its time and numeric columns."""
        why_not = self.query_one(QueryPanel).toggle_chart()
        if why_not:
            self.notify(why_not, severity="warning")

    @after_typing
    def action_favorite(self) -> None:
        """F7: keep the statement under the cursor as a favorite, under a name."""
        sql = self._statement()
        if not sql:
            return

        def save(name: str | None) -> None:
            if name:
                self.history.save_favorite(name, sql)
                self.notify(f"saved as favorite '{visible_line(name)}'", markup=False)  # the name is typed text

        self.push_screen(NameScreen("Save the statement as a favorite named:"), save)

    def action_history(self) -> None:
        """History and favorites, searchable; the chosen SQL replaces the editor's text."""
        def load(sql: str | None) -> None:
            if sql:
                self.query_one("#editor", TextArea).text = sql
                self.action_show_panel("query")

        self.push_screen(HistoryScreen(self.history), load)

    def action_recall(self, step: int) -> None:
        """Ctrl+Up / Ctrl+Down in the editor: the previous / next query of the history."""
        entries = self.history.entries(limit=self.recalled + step + 1) if self.recalled + step > 0 else []
        if self.recalled + step <= 0 or len(entries) < self.recalled + step:
            return
        self.recalled += step
        self.query_one("#editor", TextArea).text = entries[self.recalled - 1].sql

    def action_copy(self, what: str) -> None:
        """y / Y in the results: the cell under the cursor, or its row as tab-separated values (OSC 52)."""
        grid, panel = self.query_one("#results", ResultGrid), self.query_one(QueryPanel)
        row, column = grid.cursor_coordinate
        if what == "cell":
            text = panel.cell(row, column)[1]
        else:
            text = "\t".join(panel.cell(row, c)[1] for c in range(grid.column_count))
        self.copy_to_clipboard(text)
        self.notify(f"copied the {what}")

    def on_data_table_cell_selected(self, event: ResultGrid.CellSelected) -> None:
        """Enter on a result cell: the whole value, with y to copy it."""
        if event.data_table.id != "results":
            return
        column, value = self.query_one(QueryPanel).cell(event.coordinate.row, event.coordinate.column)
        self.push_screen(CellScreen(column, value))


    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action in the command palette (Ctrl+P), for keys a terminal swallows."""
        yield from super().get_system_commands(screen)
        for i, name in enumerate(PANELS[:3], 1):  # where neither Ctrl+digit nor Alt+digit reaches the app
            yield SystemCommand(f"Show {name.title()}", f"Alt+{i}: the {name} panel (a tab at 80 columns or fewer)",
                                lambda name=name: self.action_show_panel(name))
        yield SystemCommand("Run the statement", "F5 or Ctrl+J: the statement under the cursor", self.action_run)
        yield SystemCommand("Explain the statement", "F6: the plan, the tiers and the rows to read",
                            self.action_explain)
        yield SystemCommand("Format the statement", "F8: laid out by the engine", self.action_format)
        yield SystemCommand("Cancel the query", "Esc: the engine stops working on it", self.action_cancel)
        yield SystemCommand("Retention", "R in the status panel: policy, tiers, dry run, apply",
                            lambda: self.action_show_panel("retention"))
        yield SystemCommand("Config", "F2, or C in the status panel: the retention policy and sampling, saved",
                            lambda: self.action_show_panel("config"))
        yield SystemCommand("Full width", "F9: the editor and results without the side panels",
                            self.action_toggle_sides)
        yield SystemCommand("Refresh status", "Ctrl+R", self.action_refresh_status)
        yield SystemCommand("Dead letters", "D in the status panel: what could not be archived, and replay",
                            self.action_dead_letters)
        yield SystemCommand("Export the result", "Ctrl+E: CSV, TSV, JSON, JSON lines or Parquet", self.action_export)
        yield SystemCommand("Chart the result", "v in the results: a time column on x, numeric columns as series",
                            self.action_chart)
        yield SystemCommand("Save as favorite", "F7: the statement under the cursor", self.action_favorite)
        yield SystemCommand("History and favorites", "Shift+F7: search, Enter loads", self.action_history)

    def action_open_figure(self) -> None:
        """o (or Enter) on a status figure: the rows behind it, in the editor, run."""
        figures = self.query_one("#status-figures", OptionList)
        if figures.highlighted is None:
            return
        figure = FIGURES[figures.highlighted]
        self.query_one("#editor", TextArea).text = figure.rows
        self.action_show_panel("query")
        self.action_run()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "status-figures":
            self.action_open_figure()

    def action_dead_letters(self) -> None:
        """D in the status panel: the dead letters, and their replay."""
        if self.background is not None:
            self.push_screen(DeadLettersScreen(self.background.archive.redis, self.config.pipeline.stream_key))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "next_panel":  # in the editor Tab indents (or accepts a completion); modals keep theirs
            return self.screen is self.screen_stack[0] and not isinstance(self.focused, TextArea)
        if action in ("dead_letters", "from_status"):  # letters elsewhere: typed, or another panel's keys
            return self.focused is None or isinstance(self.focused, StatusPanel | Tabs) or (
                self.focused.id == "status-figures")  # the tab bar holds the focus when the narrow layout opens
        if action == "open_figure":
            return self.focused is not None and self.focused.id == "status-figures"
        if action in ("recall", "select_all"):
            return isinstance(self.focused, TextArea)
        if action == "chart":
            return self.focused is not None and self.focused.id in ("results", "chart")
        if action == "copy":
            return isinstance(self.focused, ResultGrid) and self.focused.row_count > 0
        return True

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data or ""
        if data.startswith("template:"):
            sql = render(data.removeprefix("template:"), among=available(self.config.query.templates))
            editor = self.query_one("#editor", TextArea)
            editor.text = sql
            self.action_show_panel("query")

    # -- quitting --------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop cleanly: the exporter finishes the batches in hand or leaves them pending."""
        self.notify("stopping the exporter ...", timeout=10)
        if self.execution is not None and not self.execution.done:
            self.execution.cancel()
        if self.background is not None:
            await self.run_in_thread(self.background.stop)
        self.exit()

    async def run_in_thread(self, function) -> None:
        worker = self.run_worker(function, thread=True, group="quit")
        await worker.wait()
