"""Modal screens of the dashboard: a name prompt (favorites), the history and favorites browser, the
inspection of one result cell, the dead letters, and the export of a result."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, OptionList, Select, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from archives_tui.editor import sql_syntax
from archives_tui.render import visible, visible_line
from exporter.dead_letters import DeadLetter, dead_letters, dlq_key, replay, text
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
            found.add_option(Option(Text.assemble(("★ ", "yellow"), (visible_line(name), "bold"), "  ",
                                                  _first_line(sql))))
            self.sqls.append(sql)
        seen = set()
        for entry in self.history.entries(term, limit=200):
            if entry.sql in seen:
                continue
            seen.add(entry.sql)
            when = datetime.fromtimestamp(entry.started_at, UTC).strftime("%m-%d %H:%M")
            outcome = (Text(f"error: {visible_line(entry.error)[:40]}", "red") if entry.error
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
        self.notify(f"copied {visible_line(self.column)}", markup=False)  # a column's name is data too


def _first_line(sql: str) -> str:
    line = visible_line(sql)
    return line if len(line) <= 70 else line[:69] + "…"


def said_in_place(handler: Callable[..., None]) -> Callable[..., None]:
    """A fault in one of the dead-letter screen's handlers becomes a sentence in the screen: raised, it
    would end the app, and the exporter running inside it with it."""
    @functools.wraps(handler)
    def guarded(screen: DeadLettersScreen, *args, **kwargs) -> None:
        try:
            handler(screen, *args, **kwargs)
        except Exception as exc:
            screen.say_fault(exc)

    return guarded


DETAIL_FIELDS = 12  # fields the detail pane lists, each cut at DETAIL_WIDTH: a letter may hold thousands
DETAIL_WIDTH = 300


def letter_detail(letter: DeadLetter) -> Text:
    """One dead letter for the detail pane: why, where from, and its fields one a line, as text (any byte:
    ``visible``), never markup."""
    lines = [visible_line(letter.reason),
             f"entry {visible_line(letter.source_id)} · batch {visible_line(letter.batch_id)}"]
    for name, value in itertools.islice(letter.fields.items(), DETAIL_FIELDS):
        shown = visible_line(text(value[:4 * DETAIL_WIDTH]))
        cut = len(shown) > DETAIL_WIDTH or len(value) > 4 * DETAIL_WIDTH
        lines.append(f"{visible_line(text(name))} = {shown[:DETAIL_WIDTH]}{'…' if cut else ''}")
    if len(letter.fields) > DETAIL_FIELDS:
        lines.append(f"… {len(letter.fields) - DETAIL_FIELDS:,} more fields (`archives dlq list --format json` "
                     "shows them all)")
    return Text("\n".join(lines))


class DeadLettersScreen(ModalScreen[None]):
    """The dead letters, newest first: space marks one, r replays the marked ones (or the one under the
    cursor) to the stream after a y; the reads and the replay run in workers.

    A letter holds whatever the producer wrote: every cell is ``Text`` through ``visible`` (no markup read,
    no escape sequence sent), and a fault in a worker or a handler is said in the screen's outcome line;
    the app, and the exporter in it, stay up."""

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
        self.letters: dict[str, DeadLetter] = {}

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

    @work(thread=True, exclusive=True, group="dlq", exit_on_error=False)
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
            when = letter.failed_at()
            grid.add_row("●" if letter.id in self.marked else " ", Text(letter.id),
                         Text(f"{when:%m-%d %H:%M:%S}" if when else "-"), Text(visible_line(letter.reason)[:60]),
                         Text(visible_line(letter.preview(60))), key=letter.id)
        shown = f"{len(letters):,} of {total:,}" if total > len(letters) else f"{total:,}"
        self._say(notice or Text(f"{shown} dead letters · space marks · r replays · Esc closes", "dim"))

    def _say(self, text: Text) -> None:
        self.query_one("#dlq-outcome", Static).update(text)

    def say_fault(self, exc: BaseException) -> None:
        """A fault, as one sentence in the outcome line."""
        self._say(Text(f"the dead letters could not be shown: {visible_line(describe(exc))}", "red"))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.say_fault(event.worker.error)

    @said_in_place
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        letter = self.letters.get(event.row_key.value)
        if letter is not None:
            self.query_one("#dlq-entry", Static).update(letter_detail(letter))

    @said_in_place
    def action_mark(self) -> None:
        grid = self.query_one("#dlq", DataTable)
        if not grid.row_count:
            return
        key = grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key
        self.marked ^= {key.value}
        grid.update_cell(key, "mark", "●" if key.value in self.marked else " ")

    @said_in_place
    def action_ask(self) -> None:
        grid = self.query_one("#dlq", DataTable)
        if not grid.row_count:
            return
        self.asked = sorted(self.marked) or [grid.coordinate_to_cell_key(grid.cursor_coordinate).row_key.value]
        self._say(Text(f"replay {len(self.asked):,} dead letters to {visible_line(self.stream_key)}? y replays, "
                       "any other key does not", "yellow"))

    def on_key(self, event) -> None:
        if self.asked and event.key not in ("y", "r"):
            self.asked = []
            self._say(Text("not replayed", "dim"))

    def action_replay(self) -> None:
        if self.asked:
            self.run_replay(self.asked)
            self.asked = []

    @work(thread=True, exclusive=True, group="dlq-replay", exit_on_error=False)
    def run_replay(self, ids: list[str]) -> None:
        try:
            done = replay(self.client, self.stream_key, ids)
            left = [f"{len(done.missing):,} were gone already"] if done.missing else []
            left += [f"{len(done.empty):,} hold no original field and stay"] if done.empty else []
            text = Text(f"replayed {len(done.replayed):,} to {visible_line(self.stream_key)}"
                        + "".join(f"; {part}" for part in left), "green")
        except Exception as exc:
            text = Text(visible_line(describe(exc)), "red")
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
