"""The dashboard's SQL editor: ClickHouse highlighting and completion from the engine's own catalog.

Textual's TextArea highlights only through tree-sitter, which we do not ship; ``SqlEditor`` fills the
highlights from the project's one SQL lexer (``exporter.query.lexer``, through ``archives_tui.vocabulary``)
instead. Completion is a list that floats at the cursor and never takes focus: the editor keeps every key
and hands the list the few it needs.
Colours come from the app's theme, so the editor reads well on dark, light and high-contrast alike, and the
history's read-only SQL gets the same highlighting (the same lexer and names) in the same colours.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual._text_area_theme import TextAreaTheme
from textual.app import App
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.geometry import Offset
from textual.widgets import OptionList, TextArea

from archives_tui.vocabulary import Candidate, Vocabulary
from exporter.engine.interface import Catalog
from exporter.query.lexer import statement_at
from exporter.query.templates import Template, TemplateError, render

VISIBLE_ROWS = 8
CTRL_SPACE = ("ctrl+space", "ctrl+@", "ctrl+at")  # terminals send Ctrl+Space as NUL, which Textual names ctrl+@
_PREFIX = re.compile(r"(?:(\w+|`[^`]+`)\.)?(\w*)$")  # an optional "table." and the word being typed

# Hues per background; keywords take the theme's primary colour and comments its muted text, so each app
# theme (high contrast too) puts its own stamp on the editor. Red, green and amber mean failure, success
# and warning elsewhere in the dashboard: none of them colours SQL.
_HUES = {
    True: {"function": "#DCDCAA", "type": "#4EC9B0", "string": "#CE9178", "number": "#B5CEA8",
           "variable": "#9CDCFE", "variable.parameter": "#C586C0", "constant.builtin": "#569CD6"},
    False: {"function": "#795E26", "type": "#267F99", "string": "#A0522D", "number": "#6F42C1",
            "variable": "#001080", "variable.parameter": "#AF00DB", "constant.builtin": "#0550AE"},
}


def syntax_styles(app: App) -> dict[str, Style]:
    """Highlight name -> style, from the app's current theme."""
    theme = app.current_theme
    variables = theme.to_color_system().generate()  # this theme's, even while the app is switching to it
    foreground, background = Color.parse(variables["foreground"]), Color.parse(variables["background"])
    primary = Color.parse(variables["primary"])
    styles = {name: Style(color=hue) for name, hue in _HUES[theme.dark].items()}
    styles["keyword"] = Style(color=primary.rich_color, bold=True)
    styles["operator"] = Style(color=foreground.blend(primary, 0.4).rich_color)
    styles["comment"] = Style(color=foreground.blend(background, 0.35).rich_color, italic=True)
    return styles


def editor_theme(app: App) -> TextAreaTheme:
    """A TextArea theme following the app's: the widget's own CSS colours (no base style), our syntax colours."""
    return TextAreaTheme(name=f"archives-sql-{app.theme}", syntax_styles=syntax_styles(app))


def sql_syntax(sql: str, app: App, word_wrap: bool = False) -> Text:
    """Read-only SQL (the history's preview) highlighted as the editor highlights it: the same lexer, the
    same names (the editor's words, the engine's once the catalog has arrived), the same colours."""
    styles = syntax_styles(app)
    editors = app.screen_stack[0].query(SqlEditor) if app.screen_stack else []
    vocabulary = editors[0].vocabulary if editors else SqlEditor.vocabulary
    lines = sql.split("\n")
    text = Text(sql, no_wrap=not word_wrap, end="")
    found, offset = vocabulary.highlights(lines), 0
    for row, line in enumerate(lines):
        encoded = None if line.isascii() else line.encode()
        for start, end, name in found.get(row, ()):
            if encoded is not None:  # the highlights' offsets are UTF-8 bytes
                start = len(encoded[:start].decode(errors="ignore"))
                end = None if end is None else len(encoded[:end].decode(errors="ignore"))
            text.stylize(styles[name], offset + start, offset + (len(line) if end is None else end))
        offset += len(line) + 1
    return text


class CompletionList(OptionList):
    """The completion list: floats over the screen below the word being typed (above it when there is no
    room below), clipped to the screen, and never takes focus, so typing goes on in the editor."""

    can_focus = False
    DEFAULT_CSS = f"""
    CompletionList {{
        overlay: screen;
        constrain: inside inflect;
        margin: 1 0;
        width: auto;
        min-width: 16;
        max-width: 64;
        height: auto;
        max-height: {VISIBLE_ROWS + 2};
        border: round $accent;
        padding: 0;
        background: $surface;
        display: none;
        & > .option-list--option-highlighted {{
            color: $block-cursor-foreground;
            background: $block-cursor-background;
            text-style: $block-cursor-text-style;
        }}
    }}
    """

    def __init__(self, editor: SqlEditor) -> None:
        super().__init__(id="completions")
        self.editor = editor

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click on a completion accepts it."""
        event.stop()
        self.highlighted = event.option_index
        self.editor.accept_completion()
        self.editor.focus()


class SqlEditor(TextArea):
    """A code editor for ClickHouse SQL: highlighting from the project's lexer, completion from the catalog."""

    BINDINGS: ClassVar[list[BindingType]] = [  # handled in _on_key (terminals name the key apart); listed for F1
        Binding("ctrl+space", "complete", "Complete the word", show=False)]

    vocabulary: Vocabulary = Vocabulary()  # the built-in words until use_catalog: the first paint has colour

    def __init__(self, text: str = "", **options: Any) -> None:
        """TextArea's options, with a code editor's defaults (line numbers, Tab indents, no soft wrap)."""
        options.setdefault("show_line_numbers", True)
        options.setdefault("tab_behavior", "indent")
        options.setdefault("soft_wrap", False)
        super().__init__(text, **options)
        self.completions = CompletionList(self)
        self.found: list[Candidate] = []
        self.templates: dict[str, Template] = {}
        self._typed: deque[str] = deque()  # keys typed whose edits are still to come (fast typing queues them)

    def on_mount(self) -> None:
        self.screen.mount(self.completions)
        self.watch(self.app, "theme", self._follow_app_theme, init=True)

    def _follow_app_theme(self) -> None:
        theme = editor_theme(self.app)
        self.register_theme(theme)
        self.theme = theme.name

    def use_catalog(self, catalog: Catalog, templates: dict[str, Template] | None = None) -> None:
        """The engine's words replace the built-in ones (called when the archive has opened); ``templates``
        lets a template completion insert the template's SQL rather than its name."""
        self.vocabulary = Vocabulary(catalog)
        self.templates = templates or {}
        self._build_highlight_map()
        self.refresh()

    # -- highlighting ------------------------------------------------------------------------------------

    def _build_highlight_map(self) -> None:
        """Overrides a private TextArea method (textual 8, pinned <9): TextArea calls it after every edit to
        rebuild ``_highlights`` (line -> (start byte, end byte or None, highlight name)) from tree-sitter;
        we fill it from the lexer, the whole document each time (about 2.5 ms for 200 lines)."""
        self._line_cache.clear()
        self._highlights.clear()
        self._highlights.update(self.vocabulary.highlights(self.document.lines))

    # -- completion --------------------------------------------------------------------------------------

    @property
    def completing(self) -> bool:
        return self.completions.display

    async def _on_key(self, event: events.Key) -> None:
        """Runs before TextArea's own key handler: the list's keys while it is open, Ctrl+Space, and a note
        of what was typed so the edit it makes can refresh the list."""
        key = event.key
        handled = False
        if self.completing and not self.read_only:
            if key in ("up", "down", "pageup", "pagedown"):
                {"up": self.completions.action_cursor_up, "down": self.completions.action_cursor_down,
                 "pageup": self.completions.action_page_up, "pagedown": self.completions.action_page_down}[key]()
                handled = True
            elif key in ("tab", "enter"):
                # accepting the word as typed changes nothing: Enter is then a new line, Tab only closes
                handled = self.accept_completion() or key == "tab"
            elif key == "escape":  # only closes the list: no cancel, the editor keeps focus
                self.close_completions()
                handled = True
        if key in CTRL_SPACE and not self.read_only:
            self.complete(explicit=True)
            handled = True
        if handled:
            event.stop()
            event.prevent_default()
            return
        if event.is_printable or key in ("backspace", "delete"):
            self._typed.append(key)
        else:
            self._typed.clear()
            self.close_completions()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        """After each edit: typing refreshes the list (opens it on a word), anything else closes it."""
        if event.text_area is not self:
            return
        typed = self._typed.popleft() if self._typed else None
        if typed is None or (typed in ("backspace", "delete") and not self.completing):
            self.close_completions()  # deleting narrows or widens an open list, but opens none
        else:
            self.complete()

    def on_blur(self) -> None:
        self.close_completions()

    def on_mouse_down(self) -> None:
        self.close_completions()

    def on_resize(self) -> None:  # the list would float where the word no longer is
        self.close_completions()

    def on_mouse_scroll_down(self) -> None:
        self.close_completions()

    def on_mouse_scroll_up(self) -> None:
        self.close_completions()

    def _word(self) -> tuple[str | None, str]:
        """The table or alias before a '.', if any, and the word being typed up to the cursor."""
        row, column = self.cursor_location
        match = _PREFIX.search(self.document[row][:column])
        qualifier = match.group(1).strip("`") if match and match.group(1) else None
        return qualifier, match.group(2) if match else ""

    def _statement(self) -> tuple[str, int]:
        """The statement under the cursor and the cursor's offset in it: the lexer's statements, so a ';'
        in a string, a quoted name, a comment or a heredoc ends none."""
        row, column = self.cursor_location
        lines = self.document.lines
        text = "\n".join(lines)
        offset = sum(len(line) + 1 for line in lines[:row]) + column
        start, end = statement_at(text, offset)
        return text[start:end], offset - start

    def _in_literal(self) -> bool:
        """Whether the cursor is inside a string, a comment or a number, where nothing is completed."""
        row, column = self.cursor_location
        line = self.document[row].encode()
        at = len(self.document[row][:column].encode())
        for start, end, name in self._highlights.get(row, ()):
            stop = len(line) if end is None else end
            if name not in ("string", "comment", "number") or not start < at <= stop:
                continue
            token = line[start:stop]
            closed = name == "string" and len(token) > 1 and token.endswith(token[:1]) and not token.endswith(b"\\'")
            if at < stop or not closed:
                return True
        return False

    def complete(self, explicit: bool = False) -> None:
        """Open or refresh the list for the word at the cursor: on a word of one letter or more, after a
        table's '.', or on Ctrl+Space (``explicit``) anywhere."""
        qualifier, prefix = self._word()
        if (not prefix and qualifier is None and not explicit) or self._in_literal():
            self.close_completions()
            return
        statement, at = self._statement()
        found = self.vocabulary.complete(statement, prefix, qualifier, at)
        if not found or (len(found) == 1 and found[0].insert == prefix and not explicit):
            self.close_completions()
            return
        self.found = found
        names = min(max(cell_len(c.name) for c in found), 26)
        listing = self.completions
        listing.set_options([_prompt(c, names) for c in found])
        listing.highlighted = 0
        x, y = self.cursor_screen_offset
        listing.absolute_offset = Offset(max(0, x - cell_len(prefix) - 1), y)  # names under the word typed
        listing.display = True
        listing.refresh(layout=True)

    def action_complete(self) -> None:
        self.complete(explicit=True)

    def close_completions(self) -> None:
        if self.completions.display:
            self.completions.display = False
            self.found = []

    def accept_completion(self) -> bool:
        """The highlighted completion replaces the word being typed; False when that would change nothing."""
        index = self.completions.highlighted
        if not self.completing or index is None or index >= len(self.found):
            return False
        candidate = self.found[index]
        _, prefix = self._word()
        insert = candidate.insert
        if candidate.kind == "template":
            with contextlib.suppress(TemplateError):  # one this editor cannot render: its name, as shown
                insert = render(candidate.name, among=self.templates or None)
        self.close_completions()
        if insert == prefix:
            return False
        row, column = self.cursor_location
        self.replace(insert, (row, column - len(prefix)), (row, column), maintain_selection_offset=False)
        return True


def _prompt(candidate: Candidate, width: int) -> Text:
    """A line of the list: the name, then its kind (a column's type) dimmed."""
    name = candidate.name if cell_len(candidate.name) <= width else candidate.name[: width - 1] + "…"
    detail = candidate.detail if candidate.kind in ("column", "table") and candidate.detail else candidate.kind
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {name.ljust(width)}  ")
    text.append(f"{detail if len(detail) <= 28 else detail[:27] + '…'} ", "dim")
    return text
