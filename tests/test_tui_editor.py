"""The SQL editor driven through Textual's Pilot on the real parts (Redis, chdb): ClickHouse highlighting
with the engine's own names at the right byte columns, and completion from the catalog (a list at the
cursor that filters as one types, Tab accepts, Esc only closes it)."""

from __future__ import annotations

import asyncio

from rich.console import Console
from textual import events

from archives_tui.app import ArchivesApp
from archives_tui.editor import SqlEditor, sql_syntax
from archives_tui.panels import QueryPanel
from archives_tui.vocabulary import CORE_KEYWORDS, HIGHLIGHT_NAMES, Vocabulary, tables_in
from exporter.engine import wire
from exporter.engine.interface import Catalog, Column, Table
from exporter.query import lexer
from tests.pilot import quit_app, results, text_of, until


async def opened(app: ArchivesApp, pilot) -> SqlEditor:
    """The editor once the archive is open and the engine's catalog has reached it, focused."""
    editor = app.query_one("#editor", SqlEditor)
    await until(pilot, lambda: editor.vocabulary.catalog is not None)
    editor.focus()
    await pilot.pause()
    return editor


def spans(editor: SqlEditor, row: int) -> dict[str, str]:
    """The highlighted pieces of a line, text -> highlight name (offsets read as UTF-8 bytes)."""
    line = editor.document[row].encode()
    return {line[start:end].decode(): name for start, end, name in editor._highlights.get(row, [])}


def typed(editor: SqlEditor, text: str) -> None:
    """The editor holding ``text``, the cursor at its end."""
    editor.text = text
    editor.move_cursor(editor.document.end)


def shown(editor: SqlEditor) -> list[str]:
    return [c.name for c in editor.found] if editor.completing else []


def test_the_editor_colours_clickhouse_with_the_engines_own_names(quick):
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            editor = app.query_one("#editor", SqlEditor)
            assert spans(editor, 0)["SELECT"] == "keyword"  # the first paint, before the catalog arrives
            editor = await opened(app, pilot)
            editor.text = ("SELECT toStartOfHour(enqueue_time) AS hour, notAFunction(1) -- per hour\n"
                           "  , CAST('2024-01-01' AS DateTime64(3)) /* a\n"
                           "comment */ FROM jobs WHERE queue = 'ünï' AND retries > 2.5\n"
                           "-- «résumé» ✓ then a token: toDate(now())")
            line = spans(editor, 0)
            assert line["SELECT"] == "keyword" and line["AS"] == "keyword"
            assert line["toStartOfHour"] == "function" and "notAFunction" not in line  # the engine has no such one
            assert "hour" not in line and "enqueue_time" not in line  # an alias and a column are names
            assert line["-- per hour"] == "comment"
            assert editor._highlights[0][1] == (7, 20, "function")  # SELECT␣ is 7 bytes
            line = spans(editor, 1)
            assert line["DateTime64"] == "type" and line["'2024-01-01'"] == "string" and line["3"] == "number"
            assert line["CAST"] == "function"
            assert (editor._highlights[1][-1][1:]) == (None, "comment")  # "/* a" runs on to the next line
            line = spans(editor, 2)
            assert line["comment */"] == "comment" and line["'ünï'"] == "string" and line["2.5"] == "number"
            assert line["FROM"] == line["WHERE"] == line["AND"] == "keyword" and line[">"] == "operator"
            # 'ünï' is 7 bytes but 5 characters: AND starts at byte 43, character 41
            assert (43, 46, "keyword") in editor._highlights[2]
            assert editor.document[2][41:44] == "AND"
            line = spans(editor, 3)
            assert list(line.items()) == [("-- «résumé» ✓ then a token: toDate(now())", "comment")]
            editor.text = "SELECT «é» , toDate(now()) AS d, 'x' FROM jobs"
            assert editor._highlights[0][1] == (16, 22, "function")  # «é» is 6 bytes for 3 characters
            assert editor.document[0][13:19] == "toDate"
            names = {name for spans_ in editor._highlights.values() for _, _, name in spans_}
            assert names <= HIGHLIGHT_NAMES <= set(editor._theme.syntax_styles)

            # the colours reach the screen, at the right characters despite the multi-byte ones before
            screen = app.export_screenshot()
            function = editor._theme.syntax_styles["function"].color.triplet.hex
            assert function.lower() in screen.lower()
            strip = editor.render_line(0)
            styles = {seg.text: seg.style for seg in strip}
            assert "toDate" in styles and styles["toDate"].color == editor._theme.syntax_styles["function"].color
            keyword = editor._theme.syntax_styles["keyword"].color
            # the history's read-only SQL: the same lexer and names, in the same colours
            preview = Console(width=80, color_system="truecolor").render(
                sql_syntax("SELECT 'a' -- b\n, $$c;d$$ # e\n, toDate(1), «é» 2", app))
            styles = {seg.text: seg.style for seg in preview if seg.text.strip()}
            colour = {name: style.color for name, style in editor._theme.syntax_styles.items()}
            assert styles["SELECT"].color == keyword and styles["-- b"].color == colour["comment"]
            assert styles["'a'"].color == styles["$$c;d$$"].color == colour["string"]
            assert styles["# e"].color == colour["comment"] and styles["toDate"].color == colour["function"]
            assert styles["2"].color == colour["number"]  # after characters of two bytes, at its own place
            app.theme = "archives-light"  # the editor follows the app's theme
            await pilot.pause(0.2)
            assert editor.theme == "archives-sql-archives-light"
            assert editor._theme.syntax_styles["keyword"].color != keyword
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_completion_offers_the_catalogs_names_and_tab_accepts(quick):
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            editor = await opened(app, pilot)
            listing = editor.completions
            typed(editor, "SELECT count() FROM ")
            await pilot.press("j", "o")
            assert editor.completing and listing.display and shown(editor)[0] == "jobs"
            assert {"jobs_archive", "jobs_cold"} <= set(shown(editor)) and editor.has_focus
            assert listing.region.y == editor.cursor_screen_offset.y + 1  # right below the word typed
            await pilot.press("tab")
            assert editor.text == "SELECT count() FROM jobs" and not editor.completing
            await pilot.press(*" AS j")
            assert editor.completing
            await pilot.press("f5")  # the app's key: the list closes, the statement runs as typed
            assert not editor.completing and editor.text == "SELECT count() FROM jobs AS j"
            await until(pilot, lambda: "1 row in" in text_of(app, "#runbar"))

            typed(editor, "SELECT count() FROM ")
            for key in "jo":  # typed faster than the edits land: both keys queue before their edits
                app.post_message(events.Key(key, key))
            await pilot.pause(0.2)
            assert editor.text.endswith("FROM jo") and shown(editor)[0] == "jobs"

            typed(editor, "SELECT count() FROM ")
            await pilot.press("j", "o")
            before = len(shown(editor))
            await pilot.press("b", "s", "_", "c")  # typing filters
            assert shown(editor)[0] == "jobs_cold" and len(shown(editor)) < before
            await pilot.press("backspace", "backspace")  # and deleting widens it again
            assert shown(editor)[0] == "jobs" and editor.completing
            await pilot.press("down", "enter")  # Down moves, Enter accepts
            assert editor.text.startswith("SELECT count() FROM jobs_") and not editor.completing

            typed(editor, "SELECT ")
            await pilot.press("j", "o", "b", "s", ".")  # after a table's '.', its columns
            jobs = [c.name for c in editor.vocabulary.catalog.table("jobs").columns]
            assert editor.completing and shown(editor) == jobs
            await pilot.press("e", "n")
            assert all("en" in name for name in shown(editor)) and "tenant_id" in shown(editor)
            assert shown(editor)[-1] == "tenant_id"  # a prefix match before a substring one
            await pilot.press("q")
            assert shown(editor) == ["enqueue_time"]
            await pilot.press("tab")
            assert editor.text == "SELECT jobs.enqueue_time"

            typed(editor, "SELECT count() FROM jobs_archive AS a WHERE a.")  # an alias
            await pilot.press("q")
            assert shown(editor) == ["queue"] or shown(editor)[0] == "queue"
            typed(editor, "SELECT count() FROM jobs_archive WHERE ")  # the statement's columns first
            await pilot.press("o", "u")
            assert shown(editor)[0] == "outcome"
            await pilot.press("escape")  # Esc closes the list only: the editor keeps focus, nothing cancelled
            assert not editor.completing and editor.has_focus and not listing.display
            assert editor.text == "SELECT count() FROM jobs_archive WHERE ou"
            await pilot.press("escape")  # with no list, Esc leaves the editor as before
            assert not editor.has_focus and app.query_one("#results").has_focus

            editor.focus()
            typed(editor, "SELECT toStartOfHo")
            await pilot.pause()
            assert not editor.completing  # set, not typed: no list
            await pilot.press("ctrl+space")  # Ctrl+Space opens it
            assert shown(editor)[0] == "toStartOfHour"
            await pilot.press("enter")
            assert editor.text == "SELECT toStartOfHour("
            typed(editor, "SELECT * FROM jobs WHERE queue = 'jo")
            await pilot.press("b")
            assert not editor.completing  # nothing in a string
            typed(editor, "SELECT ")
            await pilot.press("d", "a", "t", "e", "t", "i", "m", "e", "6")  # a type, whatever the case typed
            assert "DateTime64" in shown(editor)
            await pilot.press("space")  # a non-word key closes it
            assert not editor.completing
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_completion_fits_a_narrow_screen(quick):
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(70, 30)) as pilot:
            await pilot.press("f3")  # the Query tab
            editor = await opened(app, pilot)
            typed(editor, "SELECT count() FROM jobs WHERE queue = 'a' AND enqueue_time > now() AND ")
            editor.scroll_cursor_visible()
            await pilot.press("t", "o")
            await pilot.pause(0.2)
            listing = editor.completions
            assert editor.completing and len(shown(editor)) > 8
            region = listing.region
            assert region.x >= 0 and region.right <= 70 and region.height <= 10 and region.bottom <= 30
            assert f" {shown(editor)[0]} " in app.export_screenshot().replace("&#160;", " ")
            third = editor.found[2].insert
            await pilot.press("down", "down", "tab")
            assert editor.text.endswith(" AND " + third) and not editor.completing
            await pilot.press("space", "t", "o")
            assert editor.completing
            await pilot.resize_terminal(80, 30)  # the list would float where the word no longer is
            await pilot.pause(0.2)
            assert not editor.completing
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_the_catalog_lists_types_and_the_wire_carries_them(warm):
    found = warm.backend.catalog()
    assert {"DateTime64", "String", "LowCardinality", "VARCHAR"} <= found.types
    assert "datetime64" in found.types and "uint64" not in found.types  # UInt64 is case-sensitive
    small = Catalog((Table("t", "MergeTree", (Column("a", "UInt8"),)),), frozenset({"count"}), frozenset({"count"}),
                    frozenset({"SELECT"}), frozenset({"DateTime64", "datetime64"}), ("queue-health",))
    sent = wire.catalog_to_wire(small)
    assert wire.catalog_from_wire(sent).types == small.types
    del sent["types"]  # an owner from before types were on the wire
    assert wire.catalog_from_wire(sent).types == frozenset()


def test_highlighting_reads_the_project_lexer():
    """The editor's colours come from ``exporter.query.lexer``: every comment form, heredocs, a string or
    a comment left open coloured as what it began to the end, format characters left plain."""
    vocabulary = Vocabulary()
    found = vocabulary.highlights(["SELECT $$a;b$$ AS h, 'x' # a note", "// another; 'one'",
                                   "SELECT\u200b.5, t.1, `open name", "still; open", "-- «é» /* 'x"])
    line = dict(((s, e), n) for s, e, n in found[0])
    assert line[(7, 14)] == "string" and line[(21, 24)] == "string" and line[(25, 33)] == "comment"
    assert found[1] == [(0, 17, "comment")]  # a // comment runs to the end of its line only
    assert (0, 6, "keyword") in found[2] and (9, 11, "number") in found[2]  # U+200B (3 bytes) left plain
    assert (len("SELECT\u200b.5, t.1, ".encode()), None, "variable") == found[2][-1]  # open to the end
    assert found[3] == [(0, None, "variable")] and found[4] == [(0, 15, "variable")]  # to the text's end
    assert vocabulary.highlights(["SELECT /* a", "b */ 1"]) == {0: [(0, 6, "keyword"), (7, None, "comment")],
                                                              1: [(0, 4, "comment"), (5, 6, "number")]}
    # completion reads a statement's tables through the lexer: none in a string or a comment
    assert tables_in("SELECT 'FROM x' FROM /* JOIN y */ jobs_archive AS a JOIN db.`jobs cold` c ON 1",
                     CORE_KEYWORDS) == {"jobs_archive": "jobs_archive", "a": "jobs_archive",
                                        "jobs cold": "jobs cold", "c": "jobs cold"}


def test_the_statement_under_the_cursor_is_the_lexers(quick, tmp_path):
    """F5, F6, F7, F8 and Ctrl+E act on the statement under the cursor whatever ';' its strings, quoted
    names, comments and heredocs hold; a statement ending in a line comment runs."""
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            editor = await opened(app, pilot)
            await until(pilot, lambda: app.background is not None)
            panel = app.query_one(QueryPanel)
            middle = "SELECT 'a;b' AS x, count() AS `n;` FROM jobs /* ; */ -- a note; with ';'"
            editor.text = f"SELECT 1 AS first; -- one;\n{middle}\n;SELECT $$c;d$$ AS y -- last"
            editor.move_cursor((1, 9))  # inside 'a;b'
            assert panel.statement() == middle
            await pilot.press("f5")
            await until(pilot, lambda: results(app).row_count == 1 and results(app).get_row_at(0)[0] == "a;b")
            editor.move_cursor((2, 10))  # in the heredoc; the statement ends in a line comment
            await pilot.press("f5")
            await until(pilot, lambda: results(app).row_count == 1 and results(app).get_row_at(0)[0] == "c;d")
            editor.move_cursor((0, 3))
            await pilot.press("ctrl+j")
            await until(pilot, lambda: results(app).row_count == 1 and results(app).get_row_at(0)[0] == 1)

            editor.move_cursor((1, 40))  # F6: the plan of the middle statement
            await pilot.press("f6")
            await until(pilot, lambda: results(app).row_count > 1 and
                        str(results(app).get_row_at(0)[0]).startswith("tiers:"))

            await pilot.press("f7")  # F7: the middle statement, as written, is the favorite
            await until(pilot, lambda: len(app.screen.query("Input")) == 1)
            await pilot.press(*"semi", "enter")
            await until(pilot, lambda: "semi" in app.history.favorites())
            assert app.history.favorites()["semi"] == middle

            target = tmp_path / "out.csv"  # Ctrl+E: the middle statement's whole result
            editor.focus()
            editor.move_cursor((1, 9))
            await pilot.press("ctrl+e")
            await until(pilot, lambda: len(app.screen.query("#path")) == 1)
            path = app.screen.query_one("#path")
            path.value = str(target)
            path.focus()
            await pilot.press("enter")
            await until(pilot, lambda: target.exists())
            assert target.read_text().splitlines()[1].startswith('"a;b"')

            editor.move_cursor((1, 9))  # F8: the middle statement laid out; the others and the comments stay
            before = editor.text
            await pilot.press("f8")
            await until(pilot, lambda: editor.text != before)
            text = editor.text
            assert text.startswith("SELECT 1 AS first; -- one;\n") and text.endswith("\n;SELECT $$c;d$$ AS y -- last")
            assert "\n    'a;b' AS x,\n" in text  # laid out over lines, and the comments after it stay
            assert text.endswith("\nFROM jobs /* ; */ -- a note; with ';'\n;SELECT $$c;d$$ AS y -- last")
            assert len([p for p in lexer.statements(text) if lexer.significant(text[p[0]:p[1]])]) == 3
            await quit_app(pilot, app)

    asyncio.run(scenario())
