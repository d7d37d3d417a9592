"""The Retention panel (R in the status panel, a tab at 80 columns or fewer): the policy, each tier's
contents and the next run's plan, as `archives retention show` prints them; a dry run, then apply after
a confirmation. Work runs in workers; the panel reads the app's retention manager when it is shown."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from archives_tui.retention_view import retention_text, run_text
from exporter.redact import describe


class RetentionPanel(VerticalScroll, can_focus=True):
    BORDER_TITLE = "Retention"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("d", "dry_run", "Dry run"),
        Binding("a", "ask", "Apply"),
        Binding("y", "apply", "Yes, apply", show=False),
        Binding("ctrl+r", "load", "Refresh"),
    ]

    asked = False  # a asked for confirmation; y applies, any other key does not

    def compose(self):
        yield Static("the archive is opening ...", id="retention-outcome")
        yield Static("", id="retention-text")

    @property
    def manager(self):
        background = self.app.background
        return background.manager if background is not None else None

    def action_load(self) -> None:
        """Read the policy and every tier (the app calls this each time the panel is brought forward)."""
        if self.manager is not None:
            self._outcome(Text("reading the policy and every tier ...", "dim"))
            self.load(hint=True)

    @work(thread=True, exclusive=True, group="show")
    def load(self, hint: bool = False) -> None:
        try:  # a tier down is a red DOWN line within the text, the rest as usual
            text = _marked(retention_text(self.manager.show()))
        except Exception as exc:  # Redis down: nothing to show but that, said in place
            text = Text(describe(exc), "red")
        self.app.call_from_thread(self.query_one("#retention-text", Static).update, text)
        if hint:
            self.app.call_from_thread(self._outcome, Text("d dry run · a apply · Ctrl+R refresh", "dim"))

    def _outcome(self, text: Text) -> None:
        self.query_one("#retention-outcome", Static).update(text)

    def action_dry_run(self) -> None:
        if self.manager is None:
            return
        self._outcome(Text("dry run ...", "yellow"))
        self.run_policy(dry_run=True)

    def action_ask(self) -> None:
        if self.manager is None:
            return
        self.asked = True
        self._outcome(Text("apply the policy now? y applies, any other key does not", "yellow"))

    def on_key(self, event) -> None:
        if self.asked and event.key not in ("y", "a"):
            self.asked = False
            self._outcome(Text("not applied", "dim"))

    def action_apply(self) -> None:
        if not self.asked:
            return
        self.asked = False
        self._outcome(Text("applying ...", "yellow"))
        self.run_policy(dry_run=False)

    @work(thread=True, exclusive=True, group="retention")
    def run_policy(self, dry_run: bool) -> None:
        try:
            run = self.manager.apply(dry_run=dry_run).as_dict()
            down = any(t.get("down") for t in run["tiers"])
            refused = any(t["refused"] for t in run["tiers"]) or run["skipped"]
            text = Text(run_text(run), "red" if down else "yellow" if refused else "green")
        except Exception as exc:
            text = Text(describe(exc), "red")
        self.app.call_from_thread(self._outcome, text)
        if not dry_run:
            self.load()


def _marked(shown: str) -> Text:
    """The retention text with each line that says a part is DOWN in red (NO_COLOR keeps the word)."""
    text = Text()
    for line in shown.splitlines(keepends=True):
        text.append(line, "red" if "DOWN: " in line else "")
    return text
