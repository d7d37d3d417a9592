"""The dead letters through the CLI: listed with their reason and original entry, replayed to the stream
(once, even when asked twice) after the cause is fixed, and then archived."""

from __future__ import annotations

import json
import time

from archives_tui.cli import main
from exporter import runtime
from exporter.dead_letters import dead_letters, replay
from exporter.pipeline import ExportPipeline
from tests.helpers import warm_counts
from tests.test_outages import write_config

STREAM = "completed_jobs"


def export(config, redis_client, warm) -> None:
    with runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)


def test_dead_letters_are_listed_and_replayed_once_after_a_fix(config, redis_client, warm, tmp_path, capsys):
    now_ms = int(time.time() * 1000)
    redis_client.xadd(STREAM, {"data": f'{{"job_id": "ok-1", "queue": "q", "outcome": "success", '
                                       f'"enqueue_time": {now_ms}}}'})
    broken = b'{"job_id": "late-1", "queue": "q", "outcome": "success"}'
    redis_client.xadd(STREAM, {"data": broken})  # no enqueue_time
    export(config, redis_client, warm)
    assert warm_counts(warm) == (1, 1)

    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "dlq", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1 and "enqueue_time" in listed[0]["reason"]
    assert listed[0]["fields"] == {"data": broken.decode()}
    assert main(["--config", str(config_file), "dlq", "list"]) == 0
    out = capsys.readouterr()
    assert listed[0]["id"] in out.out and "late-1" in out.out and "1 of 1 dead letters" in out.err

    letter = next(dead_letters(redis_client, STREAM))  # the fix, by hand: a corrected copy replaces it
    fixed = broken.replace(b"}", f', "enqueue_time": {now_ms}}}'.encode())
    redis_client.xadd(f"{STREAM}:dlq", {"data": fixed, "_reason": b"fixed", "_source_id": b"0-1",
                                        "_failed_at": b"1", "_batch_id": b"x"})
    redis_client.xdel(f"{STREAM}:dlq", letter.id)
    corrected = next(dead_letters(redis_client, STREAM)).id

    assert main(["--config", str(config_file), "dlq", "replay"]) == 2  # neither ids nor --all
    capsys.readouterr()
    assert main(["--config", str(config_file), "dlq", "replay", corrected]) == 0
    assert replay(redis_client, STREAM, [corrected]).missing == [corrected]  # twice: appended once
    assert redis_client.xlen(f"{STREAM}:dlq") == 0
    export(config, redis_client, warm)
    assert warm_counts(warm) == (2, 2)


def test_a_replayed_entry_gets_its_own_fields_back(redis_client):
    redis_client.xadd(f"{STREAM}:dlq", {"job_id": b"j", "_orig_reason": b"the producer's", "_reason": b"why",
                                        "_source_id": b"1-1", "_failed_at": b"5", "_batch_id": b"b"})
    redis_client.xadd(f"{STREAM}:dlq", {"job_id": b"k", "_reason": b"why", "_source_id": b"1-2",
                                        "_failed_at": b"6", "_batch_id": b"b"})
    done = replay(redis_client, STREAM)  # all, oldest first
    assert len(done.replayed) == 2 and not done.missing and redis_client.xlen(f"{STREAM}:dlq") == 0
    appended = [fields for _, fields in redis_client.xrange(STREAM)]
    assert appended == [{b"job_id": b"j", b"_reason": b"the producer's"}, {b"job_id": b"k"}]
