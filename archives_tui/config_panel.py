"""The Config panel (F2, or C in the status panel; a tab at 80 columns or fewer): the retention policy and
the payload sampling, each key with its doc and value, checked as it is typed by the same parsers that
read the config file. Ctrl+S (or Save) writes the changed keys into the file and puts into effect, in a
worker, what the running exporter can take without a restart; the panel says what it did."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Button, Input, Label, Static

from exporter.config import EMBEDDED, Config
from exporter.config_edit import (
    NEW_FILE,
    ConfigEditError,
    Saved,
    check,
    current,
    format_value,
    save,
    settings,
    shortened,
    validate,
)
from exporter.errors import ConfigError
from exporter.redact import describe

SECTION = "retention"


class ConfigPanel(VerticalScroll, can_focus=True):
    BORDER_TITLE = "Config"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("down", "move(1)", "Next setting", show=False),
        Binding("up", "move(-1)", "Previous setting", show=False),
    ]

    def compose(self):
        config: Config = self.app.config
        yield Static(self._where(config), id="config-where")
        yield Static(Text("Ctrl+S saves · ↑/↓ or Enter move between settings", "dim"), id="config-outcome")
        for row in settings(config, SECTION):
            name = row.key.split(".", 1)[1]
            label = Text.assemble((name, "bold"), "  ", (row.doc, "dim"))
            if row.env:
                label.append(f"  (set by {row.env} in the environment, which wins over the file)", "yellow")
            yield Label(label, classes="config-label")
            yield Input(row.text, placeholder="empty: none", id=f"config-{name}", classes="config-input",
                        compact=True)
            yield Static("", id=f"config-error-{name}", classes="config-error")
        yield Button("Save", id="config-save", variant="primary", compact=True)

    @staticmethod
    def _where(config: Config) -> Text:
        if config.source == EMBEDDED:
            return Text.assemble(("no config file", "bold"), (f" (embedded defaults): saving creates ./{NEW_FILE}",
                                                              "dim"))
        return Text.assemble(("config file ", "dim"), (config.source, "bold"))

    def _inputs(self) -> list[Input]:
        return list(self.query(".config-input").results(Input))

    def on_focus(self) -> None:
        """Brought forward (F2, C, its tab): straight into the first setting, ready to type."""
        inputs = self._inputs()
        if inputs:
            inputs[0].focus()

    def action_move(self, step: int) -> None:
        inputs = self._inputs()
        here = inputs.index(self.app.focused) if self.app.focused in inputs else -1
        target = inputs[max(0, min(len(inputs) - 1, here + step))]
        target.focus()
        target.scroll_visible()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_move(1)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Mark a bad value in place, with its sentence, as it is typed."""
        event.stop()
        self._mark(event.input, check(self._key(event.input), event.value)[1])

    def _key(self, field: Input) -> str:
        return f"{SECTION}.{field.id.removeprefix('config-')}"

    def _mark(self, field: Input, problem: str | None) -> None:
        field.set_class(problem is not None, "-invalid")
        error = self.query_one(f"#config-error-{field.id.removeprefix('config-')}", Static)
        error.update(Text(problem or "", "red"))
        error.set_class(problem is not None, "-shown")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "config-save":
            event.stop()
            self.action_save()

    confirming: dict[str, str] | None = None  # edits that shorten a window, shown once; Ctrl+S again saves them

    def action_save(self) -> None:
        """Check every setting; write and apply only when all are good (nothing is written otherwise). A
        change that makes the next retention run delete more is said first and saved by a second Ctrl+S."""
        edits = {self._key(field): field.value for field in self._inputs()}
        values, problems = validate(edits)
        for field in self._inputs():
            self._mark(field, problems.get(self._key(field)))
        if problems:
            self._outcome(Text("Not saved: " + " ".join(problems.values()), "red"))
            return
        config: Config = self.app.config
        shorter = shortened(config, values)
        if shorter and self.confirming != edits:
            self.confirming = edits
            said = "; ".join(f"{key} from {format_value(key, current(config, key))} to {format_value(key, values[key])}"
                             for key in shorter)
            self._outcome(Text(f"This keeps less: {said}. The next retention run deletes what falls outside. "
                               "Ctrl+S again saves it; any other change asks again.", "yellow"))
            return
        self.confirming = None
        self._outcome(Text("saving ...", "yellow"))
        self.save_and_apply(self.app.config, edits)

    @work(thread=True, exclusive=True, group="config-save")
    def save_and_apply(self, config: Config, edits: dict[str, str]) -> None:
        """Write the file, then apply what the running exporter can take (workers never touch widgets)."""
        try:
            saved = save(config, edits)
        except ConfigEditError as exc:
            self.app.call_from_thread(self._refused, exc.problems)
            return
        except ConfigError as exc:
            self.app.call_from_thread(self._outcome, Text(str(exc), "red"))
            return
        if not saved.changed:
            self.app.call_from_thread(self._outcome, Text(" ".join(saved.messages), "dim"))
            return
        self.app.call_from_thread(setattr, self.app, "config", saved.config)
        background = self.app.background
        if background is None:
            applied = ["The archive is still opening: the new settings apply from the next start."]
        else:
            try:
                applied = background.apply_config(saved.config)
            except Exception as exc:  # said in place; the file holds the settings for the next start
                applied = [f"Not applied now ({describe(exc)}): they apply from the next start."]
        self.app.call_from_thread(self._saved, saved, applied)

    def _refused(self, problems: dict[str, str]) -> None:
        for field in self._inputs():
            if self._key(field) in problems:
                self._mark(field, problems[self._key(field)])
        self._outcome(Text("Not saved: " + " ".join(problems.values()), "red"))

    def _saved(self, saved: Saved, applied: list[str]) -> None:
        self.query_one("#config-where", Static).update(self._where(saved.config))
        text = Text()
        for line in [*saved.messages, *applied]:
            text.append(("\n" if text else "") + line, "yellow" if "restart" in line else "green")
        self._outcome(text)

    def _outcome(self, text: Text) -> None:
        outcome = self.query_one("#config-outcome", Static)
        outcome.update(text)
        outcome.scroll_visible()
