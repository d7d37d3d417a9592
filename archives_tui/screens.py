"""Small modal screens of the dashboard: a name prompt (favorites), the history and favorites browser,
and the inspection of one result cell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from exporter.query.history import QueryHistory


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
        self.query_one("#preview", Static).update(Syntax(self.sqls[event.option_index], "sql", word_wrap=True))

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
        with VerticalScroll(classes="dialog wide"):
            yield Static(Text(self.column, "bold"))
            yield Static(self.value)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.value)
        self.notify(f"copied {self.column}")


def _first_line(sql: str) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= 70 else line[:69] + "…"
