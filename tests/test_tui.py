"""The dashboard driven through Textual's Pilot, on the real parts (Redis, chdb, a Parquet directory):
the demo's data reaches the status panel, a query runs from the editor, each width gets its layout,
resizing keeps the editor and the results, and Ctrl+Q leaves nothing pending."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual import events
from textual.widgets import DataTable, TextArea

from archives_tui.app import ArchivesApp
from archives_tui.panels import QueryPanel
from exporter.seed import seed_stream
from tests.pilot import archived, quit_app, results, text_of, until, visible

STREAM, GROUP = "completed_jobs", "archive-exporter"


def test_the_demo_fills_the_status_panel_and_quitting_leaves_nothing_pending(quick, redis_client):
    async def scenario() -> None:
        app = ArchivesApp(quick, demo=True)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app)
            await until(pilot, lambda: "this run: " in text_of(app, "#status-export")
                        and "this run: 0 archived" not in text_of(app, "#status-export"))
            assert "exporter running" in text_of(app, "#status-export")
            await quit_app(pilot, app)

    asyncio.run(scenario())
    pending = redis_client.xpending(STREAM, GROUP)["pending"]
    assert pending == 0 and redis_client.xlen(STREAM) > 0


def test_a_query_runs_from_the_editor_and_resizing_keeps_it(quick, redis_client):
    seed_stream(redis_client, STREAM, 500, days=0.5, seed=51)

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app, 500)
            editor = app.query_one("#editor", TextArea)
            editor.text = "SELECT count() AS n FROM jobs_archive"
            await pilot.press("f5")
            await until(pilot, lambda: results(app).row_count == 1)
            assert results(app).get_row_at(0)[0] == 500
            assert "1 row in" in text_of(app, "#runbar") and "warm" in text_of(app, "#runbar")

            assert all(visible(app, f"#{panel}") for panel in ("status", "query", "schema"))
            assert not visible(app, "#tabs")
            await pilot.resize_terminal(70, 30)
            await pilot.pause(0.3)
            assert visible(app, "#tabs") and visible(app, "#status") and not visible(app, "#query")
            await pilot.press("f3")
            await pilot.pause(0.3)
            assert visible(app, "#query") and not visible(app, "#status")
            assert editor.text == "SELECT count() AS n FROM jobs_archive" and results(app).row_count == 1
            await pilot.resize_terminal(160, 45)
            await pilot.pause(0.3)
            assert all(visible(app, f"#{panel}") for panel in ("status", "query", "schema"))
            assert editor.text == "SELECT count() AS n FROM jobs_archive" and results(app).row_count == 1

            editor.text = "SELECT nonsense FROM jobs_archive"
            await pilot.press("f5")
            await until(pilot, lambda: "nonsense" in text_of(app, "#result-error"))
            assert text_of(app, "#runbar") == "failed (the reason is below)"  # the sentence once, below
            assert app.is_running  # an error is said in place; the app stays up
            for key in ("ctrl+enter", "ctrl+j"):  # Ctrl+Enter where the terminal tells it apart, else Ctrl+J
                editor.text = f"SELECT '{key}' AS k"
                await pilot.press(key)
                await until(pilot, lambda key=key: results(app).row_count == 1 and results(app).get_row_at(0)[0] == key)
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_a_template_loads_into_the_editor(quick):
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            tree = app.query_one("#schema-tree")
            await until(pilot, lambda: any(str(n.data or "").startswith("template:") for n in _nodes(tree.root)))
            node = next(n for n in _nodes(tree.root) if n.data == "template:error-investigation")
            tree.select_node(node)
            await pilot.pause(0.3)
            editor = app.query_one("#editor", TextArea)
            assert "FROM jobs" in editor.text and editor.has_focus
            assert all(not n.label.plain.startswith(".") for n in _nodes(tree.root))
            await quit_app(pilot, app)

    asyncio.run(scenario())


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def test_explain_format_and_the_retention_view(quick, redis_client):
    seed_stream(redis_client, STREAM, 300, days=0.5, seed=52)

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app, 300)
            editor = app.query_one("#editor", TextArea)
            editor.text = "select 1 as a;\nselect queue,count() from jobs_archive group by queue"
            editor.move_cursor((1, 3))
            await pilot.press("f8")  # the statement under the cursor only
            await until(pilot, lambda: "GROUP BY queue" in editor.text)
            assert editor.text.startswith("select 1 as a;\n") and "SELECT\n    queue,\n    count()" in editor.text
            await pilot.press("f6")
            await until(pilot, lambda: results(app).row_count > 3)
            lines = [str(results(app).get_row_at(i)[0]) for i in range(results(app).row_count)]
            assert lines[0] == "tiers: warm" and any("ReadFromMergeTree" in line for line in lines)

            app.action_show_panel("status")
            await pilot.press("r")  # R in the status panel: the Retention panel in the query's place
            assert visible(app, "#retention") and not visible(app, "#query") and visible(app, "#status")
            await until(pilot, lambda: "policy: Redis keeps" in text_of(app.screen, "#retention-text"))
            await pilot.press("d")
            await until(pilot, lambda: "would remove" in text_of(app.screen, "#retention-outcome"))
            await pilot.press("a")
            await pilot.press("n")  # anything but y: nothing applied
            await pilot.pause(0.3)
            assert "not applied" in text_of(app.screen, "#retention-outcome")
            assert app.background.manager.last_run() is None
            await pilot.press("a", "y")
            await until(pilot, lambda: app.background.manager.last_run() is not None)
            await pilot.press("f3")  # the query comes back in its place
            assert visible(app, "#query") and not visible(app, "#retention")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_history_favorites_and_a_cell_inspected(quick, redis_client):
    seed_stream(redis_client, STREAM, 200, days=0.5, seed=53)

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(120, 40)) as pilot:
            await archived(pilot, app, 200)
            editor = app.query_one("#editor", TextArea)
            for sql in ("SELECT 1 AS one", "SELECT 'a long text value' AS words"):
                editor.text = sql
                await pilot.press("f5")
                await until(pilot, lambda sql=sql: results(app).row_count == 1
                            and app.query_one(QueryPanel).shown.column_names == [sql.split()[-1]])
            editor.focus()
            await pilot.press("ctrl+up")
            assert editor.text == "SELECT 'a long text value' AS words"
            await pilot.press("ctrl+up")
            assert editor.text == "SELECT 1 AS one"
            await pilot.press("ctrl+down")
            assert editor.text == "SELECT 'a long text value' AS words"

            await pilot.press("f7")
            await pilot.press(*"words", "enter")
            await pilot.pause(0.2)
            assert app.history.favorites() == {"words": "SELECT 'a long text value' AS words"}
            app.action_history()
            await pilot.pause(0.3)
            await pilot.press(*"one", "enter")  # searching, then loading the one found
            await pilot.pause(0.3)
            assert editor.text == "SELECT 1 AS one"

            results(app).focus()
            await pilot.press("enter")
            await pilot.pause(0.3)
            assert text_of(app.screen, "Static:last-of-type") == "a long text value"
            await pilot.press("escape")
            await quit_app(pilot, app)

    asyncio.run(scenario())


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_each_theme_loads_and_the_config_chooses_it(quick, theme):
    from archives_tui.theming import load_themes

    themes = load_themes()
    assert set(themes) == {"dark", "light", "high-contrast"}
    app = ArchivesApp(quick.replace("ui", theme=theme))
    assert app.theme == themes[theme].name
    assert ArchivesApp(quick, theme="light").theme == "archives-light"  # --theme wins over the config


def test_the_status_panels_letters_work_as_soon_as_the_narrow_layout_opens(quick, redis_client):
    """The narrow layout opens on the Status tab with the tab bar focused: d, r and c, which the panel
    shows, open what they name (d did nothing there)."""
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.background is not None)
            await pilot.press("d")
            assert type(app.screen).__name__ == "DeadLettersScreen"
            await pilot.press("escape", "r")
            assert visible(app, "#retention") and not visible(app, "#status")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_dead_letters_are_shown_and_replayed_after_a_y(quick, redis_client):
    redis_client.xadd(STREAM, {"data": b'{"job_id": "no-time-1", "queue": "q", "outcome": "success"}'})
    redis_client.xadd(STREAM, {"data": b'{"job_id": "no-time-2", "queue": "q", "outcome": "success"}'})

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(100, 35)) as pilot:
            await until(pilot, lambda: app.background is not None and redis_client.xlen(f"{STREAM}:dlq") == 2)
            app.action_dead_letters()  # D in the status panel, or the palette's "Dead letters"
            await until(pilot, lambda: "dead letters" in text_of(app.screen, "#dlq-outcome"))
            grid = app.screen.query_one("#dlq", DataTable)
            await until(pilot, lambda: grid.row_count == 2)
            assert "2 dead letters" in text_of(app.screen, "#dlq-outcome")
            await pilot.press("space", "r", "n")
            await pilot.pause(0.2)
            assert "not replayed" in text_of(app.screen, "#dlq-outcome") and redis_client.xlen(f"{STREAM}:dlq") == 2
            marked = sorted(app.screen.marked)
            await pilot.press("r", "y")
            await until(pilot, lambda: "replayed 1 to" in text_of(app.screen, "#dlq-outcome"))
            assert len(marked) == 1 and not redis_client.xrange(f"{STREAM}:dlq", marked[0], marked[0])
            # back in the stream it fails again (still no enqueue_time) and returns as a new dead letter
            await pilot.press("escape")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_a_status_figure_opens_the_rows_behind_it(quick, redis_client):
    now_ms = int(time.time() * 1000)
    for n, outcome in enumerate(["success", "failed", "failed", "timeout"]):
        redis_client.xadd(STREAM, {"data": f'{{"job_id": "f-{n}", "queue": "q", "outcome": "{outcome}", '
                                           f'"enqueue_time": {now_ms - n * 1000}}}'})

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            figures = app.query_one("#status-figures")
            await until(pilot, lambda: "failed, last hour" in str(figures.get_option_at_index(1).prompt)
                        and str(figures.get_option_at_index(1).prompt).rstrip().endswith(" 3"))
            figures.focus()
            figures.highlighted = 1
            await pilot.press("o")
            await until(pilot, lambda: results(app).row_count == 3)
            assert "outcome != 'success'" in app.query_one("#editor", TextArea).text
            assert str(figures.get_option_at_index(4).prompt).rstrip().endswith(" 4")  # warm rows
            figures.focus()
            figures.highlighted = 4
            await pilot.press("enter")  # Enter as o: the rows per day of the warm tier
            await until(pilot, lambda: app.query_one(QueryPanel).shown is not None
                        and app.query_one(QueryPanel).shown.column_names == ["day", "rows", "on_disk"])
            assert app.query_one(QueryPanel).shown.column("rows").to_pylist() == [4]
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_the_whole_result_exports_to_a_file(quick, redis_client, tmp_path):
    import os

    import pyarrow.parquet as pq

    seed_stream(redis_client, STREAM, 1500, days=0.5, seed=54)
    target = tmp_path / "out.parquet"

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(120, 40)) as pilot:
            await archived(pilot, app, 1500)
            app.query_one("#editor", TextArea).text = "SELECT job_id, queue FROM jobs_archive"
            await pilot.press("ctrl+e")
            await until(pilot, lambda: len(app.screen.query("#path")) == 1)
            app.screen.query_one("#format").value = "parquet"
            await pilot.pause(0.2)
            path = app.screen.query_one("#path")
            assert path.value.endswith(".parquet")
            path.value = str(target)
            path.focus()
            await pilot.press("enter")
            await until(pilot, lambda: "exported 1,500 rows to" in text_of(app, "#runbar"))
            await quit_app(pilot, app)

    asyncio.run(scenario())
    assert pq.read_table(target).num_rows == 1500 and os.stat(target).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no part file left


def test_a_time_series_result_is_charted_with_one_key(quick, redis_client):
    seed_stream(redis_client, STREAM, 600, days=0.5, seed=55)

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app, 600)
            editor, chart = app.query_one("#editor", TextArea), app.query_one("#chart")
            editor.focus()
            await pilot.press("ctrl+a", *"SELECT 'x' AS name, 1 AS n")  # Ctrl+A selects all: typing replaces it
            assert editor.text == "SELECT 'x' AS name, 1 AS n"
            await pilot.press("f5")
            await until(pilot, lambda: results(app).row_count == 1)
            results(app).focus()
            await pilot.press("v")  # no time column: said, nothing switched
            await pilot.pause(0.2)
            assert not visible(app, "#chart") and visible(app, "#results")
            editor.text = ("SELECT toStartOfHour(enqueue_time) AS hour, count() AS jobs FROM jobs_archive "
                           "GROUP BY hour ORDER BY hour")
            await pilot.press("f5")
            await until(pilot, lambda: results(app).row_count > 5)
            editor.focus()
            await pilot.press("escape")  # no query running: Esc leaves the editor for the results
            assert results(app).has_focus
            await pilot.press("v")
            await pilot.pause(0.3)
            assert visible(app, "#chart") and not visible(app, "#results")
            shot = app.export_screenshot().replace("&#160;", " ")
            assert "jobs by hour" in shot and chart.region.height > 8
            await pilot.press("v")
            await pilot.pause(0.2)
            assert visible(app, "#results") and not visible(app, "#chart")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_the_exporter_keeps_exporting_while_a_long_query_runs_and_esc_stops_it(quick):
    async def scenario() -> None:
        app = ArchivesApp(quick, demo=True)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app)
            editor = app.query_one("#editor", TextArea)
            editor.text = "SELECT count() FROM numbers(3000000000) WHERE sipHash64(toString(number)) % 7 = 1"  # ~100 s
            await pilot.press("f5")
            await until(pilot, lambda: app.execution is not None)
            before = app.background.pipeline.metrics.archived
            await until(pilot, lambda: app.background.pipeline.metrics.archived > before, timeout=30)
            assert not app.execution.done  # still running while the exporter archived more
            await pilot.press("escape")
            await until(pilot, lambda: app.execution.done, timeout=30)
            await until(pilot, lambda: "cancelled" in text_of(app, "#runbar"))
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_panel_keys_tabs_and_full_width(quick):
    """Ctrl/Alt+digit pick the narrow layout's five tabs; Tab / Shift+Tab walk the panels (in the editor
    Tab indents); F9 gives the query the whole width; F10 opens the command palette."""
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(70, 30)) as pilot:
            await until(pilot, lambda: app.background is not None)
            for key, panel in (("ctrl+4", "#retention"), ("alt+5", "#config"), ("ctrl+1", "#status")):
                await pilot.press(key)
                assert visible(app, panel) and not visible(app, "#query"), key
            await pilot.press("tab")  # status -> query, a tab over
            assert visible(app, "#query") and isinstance(app.focused, TextArea)
            before = app.query_one("#editor", TextArea).text
            await pilot.press("tab")  # in the editor: an indent, not a panel
            assert app.query_one("#editor", TextArea).text != before and visible(app, "#query")
            await pilot.press("escape", "shift+tab")  # leave the editor, then back a panel
            assert visible(app, "#status") and not visible(app, "#query")
            await pilot.press("alt+5")  # Config
            for _ in range(2):  # Tab twice at once: two panels on, not one (config -> status -> query)
                app.post_message(events.Key("tab", None))
            await pilot.pause(0.3)
            assert visible(app, "#query") and app.focused is app.query_one("#editor")

            await pilot.resize_terminal(160, 45)
            await pilot.pause(0.2)
            await pilot.press("f9")
            assert visible(app, "#query") and not visible(app, "#status") and not visible(app, "#schema")
            await pilot.press("f9")
            assert visible(app, "#status") and visible(app, "#schema")
            await pilot.press("f1")
            assert app.screen.query("HelpPanel")  # the keys, beside the panels
            await pilot.press("f1")
            assert not app.screen.query("HelpPanel")  # pressed again: gone
            await pilot.press("f10")
            await pilot.pause(0.2)
            assert type(app.screen).__name__ == "CommandPalette"
            await pilot.press("escape")
            await quit_app(pilot, app)

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [(70, 30), (160, 45)])
def test_keys_typed_right_after_a_switch_reach_the_panel_brought_forward(quick, size):
    """F3 / F4 / Ctrl+digit / Tab and the keys typed at once, posted together (a burst faster than the
    focus follows): each key after the switch reaches the panel brought forward, none the panel left."""
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=size) as pilot:
            editor, tree = app.query_one("#editor", TextArea), app.query_one("#schema-tree")
            figures = app.query_one("#status-figures")
            await until(pilot, lambda: len(tree.root.children) > 0)  # the schema has loaded

            async def burst(*keys: str) -> None:
                for key in keys:
                    app.post_message(events.Key(key, key if len(key) == 1 else None))
                await pilot.pause(0.3)

            for switch in ("f3", "ctrl+2", "alt+2"):
                app.action_show_panel("status")
                await pilot.pause()
                figures.highlighted = 0
                editor.text = "SELECT 1"
                editor.move_cursor((0, 0))
                await burst(switch, "end", "x", "y")
                # End is a binding, run once the key has bubbled up to the app, so the letters, which the
                # editor inserts at once, may land first: each key reached the editor, in whatever order
                assert sorted(editor.text) == sorted("SELECT 1xy") and editor.cursor_location == (0, 10), switch
                assert app.focused is editor and visible(app, "#query") and figures.highlighted == 0, switch

            for switch in ("f4", "ctrl+3"):
                app.action_show_panel("status")
                await pilot.pause()
                figures.highlighted, tree.cursor_line = 0, 0
                await burst(switch, "down", "down")
                assert tree.cursor_line == 2 and figures.highlighted == 0, switch
                assert app.focused is tree and visible(app, "#schema"), switch

            app.action_show_panel("status")
            await pilot.pause()
            editor.text = "SELECT 1"
            editor.move_cursor((0, 0))
            await burst("tab", "tab", "end")  # status -> query; in the editor Tab indents, as when typed slowly
            assert editor.text == " " * editor.indent_width + "SELECT 1"
            assert app.focused is editor and editor.cursor_location == (0, len(editor.text))

            await pilot.press("shift+f7")  # in a modal the panel keys (priority bindings) leave it be
            await until(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
            typed_in = app.focused
            await pilot.press("f3", "f4", "ctrl+1", "alt+3")
            assert type(app.screen).__name__ == "HistoryScreen" and app.focused is typed_in  # keys stay there
            await pilot.press("escape")
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_keys_typed_just_before_a_run_are_in_the_statement_it_runs(quick):
    """A burst (a paste, or keys arriving together over SSH) ending in F5, F6 or F8: the statement read
    holds every key typed before it, not the text as it stood when the app saw F5."""
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.background is not None)  # the archive is open
            editor = app.query_one("#editor", TextArea)
            app.action_show_panel("query")
            for key in ("f5", "f8"):
                editor.text = "SELECT 4"
                editor.move_cursor((0, 8))
                await pilot.pause()
                for typed in ("2", " ", "A", "S", " ", "n", key):
                    app.post_message(events.Key(typed, typed if len(typed) == 1 else None))
                if key == "f5":
                    await until(pilot, lambda: results(app).row_count == 1)
                    assert results(app).get_row_at(0)[0] == 42 and "1 row in" in text_of(app, "#runbar")
                else:
                    await until(pilot, lambda: editor.text.startswith("SELECT 42 AS n"))
            await quit_app(pilot, app)

    asyncio.run(scenario())
