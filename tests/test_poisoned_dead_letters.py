"""Dead letters holding any bytes Redis can (a field name that is not UTF-8, NUL, escape sequences,
markup, a value over the size cap, thousands of fields) go through the real exporter and are then listed
(`archives dlq list`, table and JSON), shown in the dashboard and replayed byte for byte; a fault in the
dashboard's dead-letter screen is a sentence in that screen, and the exporter inside the app goes on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archives_tui.app import ArchivesApp
from archives_tui.cli import main
from archives_tui.screens import DeadLettersScreen
from exporter.dead_letters import dead_letters, replay
from exporter.stream import raw_client
from tests.pilot import quit_app, text_of, until
from tests.test_outages import write_config
from tests.test_terminal_safety import hidden

STREAM = "completed_jobs"
ROOT = Path(__file__).resolve().parent.parent
MANY = 5000  # past the ~4,000 fields a Lua script's unpack() takes

POISONED = [
    {b"\xff\xfe": b"not UTF-8 \xff", b"job_id": b"p-1"},  # the entry
    {b"data": b'{"job_id": "p-2\x00", "queue": "\x1b[2J"}\xff'},  # NUL, ESC, a stray byte after the JSON
    {b"a\x00b": b"\x1b]0;title\x07", b"_orig_x": b"kept", b"_reason": b"own",
     b"\xc3": b"[link=https://x]y[/link] [reverse]x[/]"},
    {b"data": b"x" * (2 << 20)},  # over the default size cap, 1 MiB
    {**{f"f{i}".encode(): bytes([i % 256]) for i in range(MANY)}, b"\x80": b""},  # every byte value, an empty one
]


def archives(config_file: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m archives_tui --config FILE ARGS`, its output as bytes."""
    return subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), *args],
                          capture_output=True, timeout=120, cwd=ROOT)


@pytest.fixture
def poisoned(config, redis_client, tmp_path) -> Path:
    """The entries in ``POISONED``, dead-lettered by `archives export --once`; the config file."""
    for fields in POISONED:
        redis_client.xadd(STREAM, fields)
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    assert redis_client.xlen(f"{STREAM}:dlq") == len(POISONED)
    return config_file


def test_dlq_list_shows_every_poisoned_letter_as_text(poisoned, redis_client):
    listed = archives(poisoned, "dlq", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert b"Traceback" not in listed.stderr and not hidden(listed.stdout) and not hidden(listed.stderr)
    out = listed.stdout.decode()
    assert all(letter.id in out for letter in dead_letters(redis_client, STREAM))
    assert "\\xff\\xfe=not UTF-8 \\xff job_id=p-1" in out  # the name that is not UTF-8, by its bytes
    assert '"queue": "\\x1b[2J"}\\xff' in out and "a\\x00b=\\x1b]0;title\\x07" in out
    assert "_orig_x=kept _reason=own \\xc3=[link=https://x]y[/link] [reverse]x[/]" in out
    assert max(len(line) for line in out.splitlines()) < 200  # 2 MiB and 5,000 fields, previewed on a line
    assert listed.stderr.decode().strip() == f"5 of 5 dead letters in {STREAM}:dlq"


def test_dlq_list_json_holds_every_field_of_every_letter(poisoned):
    listed = archives(poisoned, "dlq", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr.decode()
    assert not hidden(listed.stdout)  # JSON's own \u escapes, nothing raw
    fields = sorted((letter["fields"] for letter in json.loads(listed.stdout)), key=len)
    assert {"\\xff\\xfe": "not UTF-8 \\xff", "job_id": "p-1"} in fields
    assert {"data": '{"job_id": "p-2\x00", "queue": "\x1b[2J"}\\xff'} in fields
    assert {"a\x00b": "\x1b]0;title\x07", "_orig_x": "kept", "_reason": "own",
            "\\xc3": "[link=https://x]y[/link] [reverse]x[/]"} in fields
    assert {"data": "x" * (2 << 20)} in fields
    assert len(fields[-1]) == MANY + 1 and fields[-1]["\\x80"] == "" and fields[-1]["f255"] == "\\xff"


def test_replay_puts_back_the_exact_bytes(poisoned, redis_client):
    before = redis_client.xlen(STREAM)
    replayed = archives(poisoned, "dlq", "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert b"Traceback" not in replayed.stderr and not hidden(replayed.stdout)
    assert redis_client.xlen(f"{STREAM}:dlq") == 0
    back = [fields for _, fields in redis_client.xrange(STREAM)][before:]
    def order(fields: dict) -> list:
        return sorted(fields.items())

    assert sorted(back, key=order) == sorted(POISONED, key=order)  # names and values, byte for byte


def test_a_letter_written_by_hand_with_any_bytes_in_its_own_fields(config, redis_client, tmp_path):
    config_file = write_config(tmp_path / "archives.yaml", config)
    redis_client.xadd(f"{STREAM}:dlq", {b"_reason": b"\xff\x1b[2J", b"_source_id": b"\xfe", b"_batch_id": b"\x00",
                                        b"_failed_at": b"9" * 30, b"job_id": b"by-hand"})
    empty = redis_client.xadd(f"{STREAM}:dlq", {b"_reason": b"nothing else"}).decode()
    listed = archives(config_file, "dlq", "list")
    assert listed.returncode == 0 and not hidden(listed.stdout), listed.stderr.decode()
    assert "  -  \\xff\\x1b[2J\n    job_id=by-hand" in listed.stdout.decode()  # no date: 10^30 ms is none
    as_json = json.loads(archives(config_file, "dlq", "list", "--format", "json").stdout)
    assert as_json[1]["reason"] == "\\xff\x1b[2J" and as_json[1]["source_id"] == "\\xfe"

    kept = archives(config_file, "dlq", "replay", empty)
    assert kept.returncode == 1 and b"Traceback" not in kept.stderr
    assert f"{empty} holds no field of the original entry: nothing to replay, it stays" in kept.stderr.decode()
    assert redis_client.xlen(f"{STREAM}:dlq") == 2 and redis_client.xlen(STREAM) == 0
    wrong = archives(config_file, "dlq", "replay", "\x1b[2Jnot-an-id")
    assert wrong.returncode == 2 and not hidden(wrong.stderr) and b"Traceback" not in wrong.stderr
    assert wrong.stderr.decode().strip() == ("archives: '\\x1b[2Jnot-an-id' is not a dead letter id: ids look like "
                                             "1764322800000-0 (see `archives dlq list`)")


def test_replay_keeps_a_field_named_like_a_renamed_one_and_every_duplicate(redis_client):
    fields = [b"_orig_reason", b"renamed by the exporter", b"_orig_x", b"the producer's", b"dup", b"1", b"dup", b"2",
              b"_orig_orig_batch_id", b"twice renamed", b"_reason", b"why"]
    letter = redis_client.execute_command("XADD", f"{STREAM}:dlq", "*", *fields).decode()
    assert replay(redis_client, STREAM, [letter]).replayed
    raw = redis_client.execute_command("EVAL", "return redis.call('XRANGE', KEYS[1], '-', '+')", 1, STREAM)
    assert raw[0][1] == [b"_reason", b"renamed by the exporter", b"_orig_x", b"the producer's", b"dup", b"1",
                         b"dup", b"2", b"_orig_batch_id", b"twice renamed"]


def rows(app) -> int:
    """The rows of the dead-letter screen's grid (0 while it is not composed yet)."""
    grids = app.screen.query("#dlq") if isinstance(app.screen, DeadLettersScreen) else []
    return grids[0].row_count if grids else 0


class FaultyDeadLetters(DeadLettersScreen):
    """The dead-letter screen with a fault in the worker that fills it."""

    def _fill(self, letters, total, notice) -> None:
        raise RuntimeError("the grid refused a cell")


def test_the_dashboard_shows_poisoned_letters_and_its_exporter_goes_on(quick, redis_client):
    for fields in POISONED:
        redis_client.xadd(STREAM, fields)

    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.background is not None
                        and redis_client.xlen(f"{STREAM}:dlq") == len(POISONED))
            app.action_dead_letters()
            await until(pilot, lambda: rows(app) == len(POISONED))
            assert "5 dead letters" in text_of(app.screen, "#dlq-outcome")
            details = []
            for _ in POISONED:  # the detail pane of each letter, the cursor moving down
                details.append(text_of(app.screen, "#dlq-entry"))
                await pilot.press("down")
                await pilot.pause(0.1)
            shown = "\n".join(details)
            assert "\\xff\\xfe = not UTF-8 \\xff" in shown and "a\\x00b = \\x1b]0;title\\x07" in shown
            assert f"… {MANY + 1 - 12:,} more fields" in shown
            assert "\x1b" not in shown and "\x00" not in shown

            await pilot.press("escape")
            await exporter_goes_on(pilot, app, redis_client)
            await quit_app(pilot, app)

    asyncio.run(scenario())


def test_a_fault_in_the_dead_letter_screen_is_a_sentence_there_and_the_exporter_goes_on(quick, redis_client):
    async def scenario() -> None:
        app = ArchivesApp(quick)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.background is not None)
            app.push_screen(FaultyDeadLetters(app.background.archive.redis, STREAM))
            await until(pilot, lambda: "could not be shown" in text_of(app.screen, "#dlq-outcome"))
            assert text_of(app.screen, "#dlq-outcome") == "the dead letters could not be shown: the grid refused a cell"
            await pilot.press("escape")
            await exporter_goes_on(pilot, app, redis_client)
            await quit_app(pilot, app)

    asyncio.run(scenario())


async def exporter_goes_on(pilot, app, redis_client) -> None:
    """The app and the exporter inside it still run: a new entry gets archived."""
    assert app.is_running and app.background.pipeline.metrics.archived == 0
    redis_client.xadd(STREAM, {"data": f'{{"job_id": "after", "queue": "q", "outcome": "success", '
                                       f'"enqueue_time": {int(time.time() * 1000)}}}'})
    await until(pilot, lambda: app.background.pipeline.metrics.archived == 1)


def test_fields_named_like_the_letters_own_and_repeated_fields_replay_as_they_were(config, redis_client, tmp_path):
    original = [b"_orig_reason", b"a", b"_reason", b"b", b"dup", b"1", b"dup", b"2", b"_orig_orig_batch_id", b"c",
                b"job_id", b"no-queue"]
    redis_client.execute_command("XADD", STREAM, "*", *original)
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    assert redis_client.xlen(f"{STREAM}:dlq") == 1
    replayed = archives(config_file, "dlq", "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr.decode()
    entries = raw_client(redis_client).execute_command("XRANGE", STREAM, "-", "+")
    assert entries[-1][1] == original  # every name, in order, repeated ones included
