"""Modal screens of the dashboard: a name prompt (favorites), the history and favorites browser, the
inspection of one result cell, the dead letters, and the export of a result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from archives_tui.editor import sql_syntax
from archives_tui.render import visible
from exporter.dead_letters import DeadLetter, dead_letters, dlq_key, replay
from exporter.query.history import QueryHistory
from exporter.query.writers import FORMATS
from exporter.redact import describe


class NameScreen(ModalScreen[str | None]):
    """Asks for a name; dismisses with it, or with None on Esc."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self):
        with Vertical(classes="dialog"):
            yield Static(self.prompt)
            yield Input(placeholder="name", id="name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class HistoryScreen(ModalScreen[str | None]):
    """Favorites first, then the history, newest first; typing searches SQL, errors and names; Enter
    loads the SQL into the editor."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, history: QueryHistory) -> None:
        super().__init__()
        self.history = history

    def compose(self):
        with Vertical(classes="dialog wide"):
            yield Input(placeholder="search history and favorites", id="search")
            yield OptionList(id="found")
            yield Static("", id="preview")

    def on_mount(self) -> None:
        self._fill("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def _fill(self, search: str) -> None:
        found = self.query_one("#found", OptionList)
        found.clear_options()
        self.sqls: list[str] = []  # each option's SQL, by position
        term = search or None
        for name, sql in self.history.favorites(term).items():
            found.add_option(Option(Text.assemble(("★ ", "yellow"), (name, "bold"), "  ", _first_line(sql))))
            self.sqls.append(sql)
        seen = set()
        for entry in self.history.entries(term, limit=200):
            if entry.sql in seen:
                continue
            seen.add(entry.sql)
            when = datetime.fromtimestamp(entry.started_at, UTC).strftime("%m-%d %H:%M")
            outcome = (Text(f"error: {entry.error[:40]}", "red") if entry.error
                       else Text(f"{entry.rows:,} rows" if entry.rows is not None else "", "dim"))
            found.add_option(Option(Text.assemble((when, "dim"), "  ", _first_line(entry.sql), "  ", outcome)))
            self.sqls.append(entry.sql)
        found.highlighted = 0 if found.option_count else None

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.query_one("#preview", Static).update(sql_syntax(self.sqls[event.option_index], self.app, word_wrap=True))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        found = self.query_one("#found", OptionList)
        if found.highlighted is not None:
            self.dismiss(self.sqls[found.highlighted])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.sqls[event.option_index])


class CellScreen(ModalScreen[None]):
    """One cell of the results, whole: y copies it (OSC 52, so over SSH too)."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Close"),
                                         Binding("y", "copy", "Copy")]

    def __init__(self, column: str, value: str) -> None:
        super().__init__()
        self.column, self.value = column, value

    def compose(self):
        """The value as text (``visible``: no markup read, no escape sequence sent); y copies it as it is."""
        with VerticalScroll(classes="dialog wide"):
            yield Static(Text(visible(self.column), "bold"))
            yield Static(Text(visible(self.value)))

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.value)
        self.notify(f"copied {self.column}")


def _first_line(sql: str) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= 70 else line[:69] + "…"


class DeadLettersScreen(ModalScreen[None]):
    """The dead letters, newest first: space marks one, r replays the marked ones (or the one under the
    cursor) to the stream after a y; the reads and the replay run in workers."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Close"),
                                         Binding("space", "mark", "Mark"),
                                         Binding("r", "ask", "Replay"),
                                         Binding("y", "replay", "Yes, replay", show=False),
                                         Binding("ctrl+r", "load", "Refresh")]

    def __init__(self, client, stream_key: str, limit: int = 500) -> None:
        super().__init__()
        self.client, self.stream_key, self.limit = client, stream_key, limit
        self.marked: set[str] = set()
        self.asked: list[str] = []

    def compose(self):
        with Vertical(classes="dialog wide"):
            yield Static("reading the dead letters ...", id="dlq-outcome")
            yield DataTable(id="dlq", cursor_type="row", zebra_stripes=True)
            yield Static("", id="dlq-entry")
        yield Footer()

    def on_mount(self) -> None:
        grid = self.query_one("#dlq", DataTable)
        for name in ("", "id", "failed at", "reason", "entry"):
            grid.add_column(name, key=name or "mark")
        self.action_load()

    def action_load(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="dlq")
    def load(self, notice: Text | None = None) -> None:
        try:
            letters = list(dead_letters(self.client, self.stream_key, self.limit))
            total = self.client.xlen(dlq_key(self.stream_key))
        except Exception as exc:
            self.app.call_from_thread(self._say, Text(describe(exc), "red"))
            return
        self.app.call_from_thread(self._fill, letters, total, notice)

    def _fill(self, letters: list[DeadLetter], total: int, notice: Text | None) -> None:
        self.letters = {letter.id: letter for letter in letters}
        grid = self.query_one("#dlq", DataTable)
        grid.clear()
        for letter in letters:
            when = (datetime.fromtimestamp(letter.failed_at_ms / 1000, UTC).strftime("%m-%d %H:%M:%S")
                    if letter.failed_at_ms else "-")
            grid.add_row("●" if letter.id in self.marked else " ", letter.id, when, letter.reason[:60],
                         letter.preview(60), key=letter.id)
        shown = f"{len(letters):,} of {total:,}" if total > len(letters) else f"{total:,}"
        self._say(notice or Text(f"{shown} dead letters · space marks · r replays · Esc closes", "dim"))

    def _say(self, text: Text) -> None:
        self.query_one("#dlq-outcome", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        letter = getattr(self, "letters", {}).get(event.row_key.value)
        if letter is not None:
            self.query_one("#dlq-entry", Static).update(Text(f"{letter.reason}\n{letter.preview(2000)}"))

    def action_mark(self) -> None:
        grid = self.query_one("#dlq", DataTable)
        if not grid.row_count:
            return
        key = grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key
        self.marked ^= {key.value}
        grid.update_cell(key, "mark", "●" if key.value in self.marked else " ")

    def action_ask(self) -> None:
        grid = self.query_one("#dlq", DataTable)
        if not grid.row_count:
            return
        self.asked = sorted(self.marked) or [grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key.value]
        self._say(Text(f"replay {len(self.asked):,} dead letters to {self.stream_key}? y replays, "
                       "any other key does not", "yellow"))

    def on_key(self, event) -> None:
        if self.asked and event.key not in ("y", "r"):
            self.asked = []
            self._say(Text("not replayed", "dim"))

    def action_replay(self) -> None:
        if self.asked:
            self.run_replay(self.asked)
            self.asked = []

    @work(thread=True, exclusive=True, group="dlq-replay")
    def run_replay(self, ids: list[str]) -> None:
        try:
            done = replay(self.client, self.stream_key, ids)
            text = Text(f"replayed {len(done.replayed):,} to {self.stream_key}"
                        + (f"; {len(done.missing):,} were gone already" if done.missing else ""), "green")
        except Exception as exc:
            text = Text(describe(exc), "red")
        self.marked.clear()
        self.app.call_from_thread(self.load, text)


class ExportScreen(ModalScreen[tuple[str, str] | None]):
    """Ctrl+E: where and how to export the whole result (the statement runs again, streamed to the file)."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, default_path: str) -> None:
        super().__init__()
        self.default_path = default_path

    def compose(self):
        with Vertical(classes="dialog"):
            yield Static("Export the whole result (the statement runs again, streamed to the file)")
            yield Select([(name.upper(), name) for name in FORMATS], value="csv", allow_blank=False, id="format")
            yield Input(self.default_path, id="path")
            yield Static(Text("Enter exports · Shift+Tab: the format · Esc cancels", "dim"))

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()  # Enter exports at once; Shift+Tab reaches the format

    def on_select_changed(self, event: Select.Changed) -> None:
        path = self.query_one("#path", Input)
        stem, _, _ = path.value.rpartition(".")
        path.value = f"{stem or path.value}.{event.value}"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss((str(self.query_one("#format", Select).value), event.value.strip()))
