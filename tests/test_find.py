"""`archives find`: one job's every event wherever it is, archived, still in the stream, or refused."""

from __future__ import annotations

import json

import orjson

from archives_tui.cli import main
from exporter.seed import seed_stream
from tests.test_outages import write_config

STREAM = "completed_jobs"


def event(job_id: str, outcome: str, when: str, **extra) -> dict:
    return {"data": orjson.dumps({"job_id": job_id, "queue": "payments", "outcome": outcome,
                                  "enqueue_time": when, "trace_id": "trace-7", **extra})}


def test_a_job_is_found_in_the_archive_the_stream_and_the_dead_letters(config, redis_client, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    run = ["--config", str(config_file)]
    seed_stream(redis_client, STREAM, 300, seed=51)
    redis_client.xadd(STREAM, event("job-42", "failed", "2026-11-28T09:00:00Z", retries=0))
    redis_client.xadd(STREAM, event("job-42", "retry", "2026-11-28T09:00:00Z", retries=1,
                                    start_time="2026-11-28T09:05:00Z", end_time="2026-11-28T09:01:00Z"))
    assert main([*run, "export", "--once"]) == 0  # the first attempt is archived, the second refused
    redis_client.xadd(STREAM, event("job-42", "success", "2026-11-28T09:00:00Z", retries=2))  # not exported yet
    capsys.readouterr()

    assert main([*run, "find", "job-42", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(f["found_in"], f["outcome"]) for f in found] == [
        ("stream (not yet archived)", "success"), ("dead-letter stream", "retry"), ("archive", "failed")]
    assert "end_time" in found[1]["reason"] and found[2]["job_id"] == "job-42"

    assert main([*run, "find", "trace-7", "--format", "json"]) == 0  # by trace id too
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main([*run, "find", "no-such-job"]) == 1
    assert "no event of 'no-such-job'" in capsys.readouterr().err
