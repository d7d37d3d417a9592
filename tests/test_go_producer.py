"""Entries shaped exactly as go-redis-work-queue's archive package appends them.

That library runs ``XADD archive:stream:completed * job_data <JSON> job_id <id> queue <q> outcome <o>``
where the JSON is its ``ArchiveJob`` marshalled by Go's encoding/json: times in RFC 3339 with
nanoseconds (trailing zeros dropped, ``Z`` for UTC), ``[]byte`` as base64, ``<>&`` escaped, optional
fields omitted when empty, and ``schema_version`` an integer (0 unless the caller set it).
"""

from __future__ import annotations

import base64
import json

import pytest

from exporter.batch import bodies_of
from exporter.decode import decode_bodies
from exporter.pipeline import ExportPipeline
from exporter.record import RECORD_SCHEMA
from tests.helpers import cold_table

GO_STREAM = "archive:stream:completed"
OMIT = object()  # Go's omitempty: the key is left out of the JSON


def go_marshal(job: dict) -> bytes:
    """JSON as Go's encoding/json writes it: compact, non-ASCII kept, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(job, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def go_job(**changes) -> dict:
    """An ArchiveJob in its struct's field order; ``OMIT`` drops a key as omitempty / a nil pointer does."""
    job = {
        "job_id": "go-1",
        "queue": "payments",
        "priority": 5,
        "enqueued_at": "2026-11-28T10:00:00.123456789+01:00",
        "started_at": "2026-11-28T09:00:01.5Z",
        "completed_at": "2026-11-28T10:00:02.25+01:00",
        "outcome": "success",
        "retry_count": 2,
        "worker_id": "worker-7",
        "payload_size": 64,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "error_message": "card <declined> & retried",
        "error_code": "E_CARD",
        "processing_time_ms": 750,
        "payload_hash": "ab" * 32,
        "payload_snapshot": base64.b64encode('{"order":42,"note":"<b>café</b>"}'.encode()).decode(),
        "tags": {"region": "eu-west-1"},
        "schema_version": 0,
        "archived_at": "2026-11-28T10:00:03.000000001+01:00",
        "tenant": "acme",
        "job_type": "charge",
    }
    job.update(changes)
    return {key: value for key, value in job.items() if value is not OMIT}


def go_fields(job: dict, **extra: str) -> dict[str, bytes | str]:
    """The stream fields of one XADD, as the library sends them (plus any ``extra`` fields)."""
    return {"job_data": go_marshal(job), "job_id": job["job_id"], "queue": job["queue"],
            "outcome": job["outcome"], **extra}


def go_entry(i: int, job: dict, **extra: str) -> list:
    """A raw ``[id, fields]`` entry as redis-py returns it."""
    items = []
    for key, value in go_fields(job, **extra).items():
        items += [key.encode(), value if isinstance(value, bytes) else value.encode()]
    return [f"1-{i}".encode(), items]


def decode(*jobs: dict, **extra: str):
    return decode_bodies(bodies_of([go_entry(i, job, **extra) for i, job in enumerate(jobs)]), 1 << 20)


def test_an_archive_job_maps_onto_the_archive_record():
    decoded = decode(go_job())
    assert decoded.rejects == [] and decoded.table.schema == RECORD_SCHEMA
    row = decoded.table.to_pylist()[0]
    assert {k: row[k] for k in ("job_id", "queue", "tenant_id", "priority", "outcome", "retries", "worker_id",
                                "payload_size", "payload_hash", "trace_id", "error_type", "error_msg",
                                "schema_version")} == {
        "job_id": "go-1", "queue": "payments", "tenant_id": "acme", "priority": 5, "outcome": "success",
        "retries": 2, "worker_id": "worker-7", "payload_size": 64, "payload_hash": "ab" * 32,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "error_type": "E_CARD",
        "error_msg": "card <declined> & retried", "schema_version": "1.0.0"}
    assert row["enqueue_time"].isoformat() == "2026-11-28T09:00:00.123456+00:00"
    assert row["start_time"].isoformat() == "2026-11-28T09:00:01.500000+00:00"
    assert row["end_time"].isoformat() == "2026-11-28T09:00:02.250000+00:00"
    assert row["payload_sample"] == '{"order":42,"note":"<b>café</b>"}'
    assert row["tags"] == [("region", "eu-west-1"), ("go.processing_time_ms", "750"), ("go.schema_version", "0"),
                           ("go.archived_at", "2026-11-28T10:00:03.000000001+01:00"), ("go.job_type", "charge")]


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-11-28T10:00:00.123456789+01:00", "2026-11-28T09:00:00.123456+00:00"),
    ("2026-11-28T10:00:00.1+01:00", "2026-11-28T09:00:00.100000+00:00"),  # trailing zeros dropped
    ("2026-11-28T09:00:00Z", "2026-11-28T09:00:00+00:00"),  # a whole second has no fraction
    ("2026-11-28T03:30:00.000001-05:30", "2026-11-28T09:00:00.000001+00:00"),
])
def test_go_rfc3339nano_times(text, iso):
    decoded = decode(go_job(enqueued_at=text, started_at=OMIT, completed_at=text))
    assert decoded.table.column("enqueue_time")[0].as_py().isoformat() == iso


def test_omitted_started_at_and_zero_completed_at_are_unset():
    decoded = decode(go_job(started_at=OMIT, completed_at="0001-01-01T00:00:00Z",
                            archived_at="0001-01-01T00:00:00Z"))
    row = decoded.table.to_pylist()[0]
    assert decoded.rejects == [] and row["start_time"] is None and row["end_time"] is None
    assert "go.archived_at" not in dict(row["tags"])  # unset, so there is nothing to keep


def test_zero_enqueued_at_is_refused_with_a_clear_reason():
    decoded = decode(go_job(enqueued_at="0001-01-01T00:00:00Z"), go_job(job_id="go-2"))
    assert decoded.table.column("job_id").to_pylist() == ["go-2"]
    assert decoded.rejects == [(0, "enqueued_at is Go's zero time 0001-01-01T00:00:00Z (unset), "
                                   "but the archive needs an enqueue time")]


def test_canceled_is_stored_as_cancelled():
    decoded = decode(go_job(outcome="canceled"))
    assert decoded.rejects == [] and decoded.table.column("outcome").to_pylist() == ["cancelled"]


def test_optional_fields_omitted_by_go_are_empty():
    job = go_job(**dict.fromkeys(("trace_id", "error_message", "error_code", "payload_hash", "payload_snapshot",
                                  "tags", "tenant", "job_type"), OMIT))
    row = decode(job).table.to_pylist()[0]
    assert row["payload_sample"] is None and row["tenant_id"] == "" and row["error_msg"] == ""
    assert [k for k, _ in row["tags"]] == ["go.processing_time_ms", "go.schema_version", "go.archived_at"]


def test_a_snapshot_that_is_not_utf8_is_kept_as_its_base64_text():
    raw = base64.b64encode(b"\x89PNG\r\n\x1a\n\xff").decode()
    row = decode(go_job(payload_snapshot=raw)).table.to_pylist()[0]
    assert row["payload_sample"] == raw and dict(row["tags"])["go.payload_encoding"] == "base64"


def test_a_snapshot_that_is_not_base64_is_refused():
    decoded = decode(go_job(payload_snapshot="not base64!"))
    assert decoded.table.num_rows == 0 and decoded.rejects[0][1].startswith("payload_snapshot is not base64")


def test_a_producer_tag_with_a_reserved_key_wins():
    row = decode(go_job(tags={"go.job_type": "mine", "env": "prod"})).table.to_pylist()[0]
    tags = dict(row["tags"])
    assert tags["go.job_type"] == "mine" and tags["env"] == "prod" and tags["go.processing_time_ms"] == "750"


@pytest.mark.parametrize("version", [0, 1, 2])
def test_known_integer_schema_versions_map_to_the_current_version(version):
    decoded = decode(go_job(schema_version=version))
    assert decoded.rejects == [] and decoded.table.column("schema_version").to_pylist() == ["1.0.0"]


def test_an_unknown_integer_schema_version_is_refused():
    decoded = decode(go_job(schema_version=7))
    assert decoded.table.num_rows == 0
    assert decoded.rejects == [(0, "unknown schema_version 7 (the Go form knows 0 = unset, 1, 2)")]


@pytest.mark.parametrize(("change", "reason"), [
    ({"priority": 200}, "field 'priority' out of range [-128, 127]: 200"),
    ({"retry_count": 70000}, "field 'retries' out of range [0, 65535]: 70000"),
    ({"payload_size": 2**32}, f"field 'payload_size' out of range [0, {2**32 - 1}]: {2**32}"),
    ({"payload_size": 2**63 - 1}, f"field 'payload_size' out of range [0, {2**32 - 1}]: {2**63 - 1}"),
])
def test_numbers_that_do_not_fit_their_column_are_refused(change, reason):
    decoded = decode(go_job(**change))
    assert decoded.table.num_rows == 0 and decoded.rejects == [(0, reason)]


def test_the_json_wins_over_the_stream_index_and_nothing_is_lost():
    entry = go_entry(0, go_job(), shard="7")
    entry[1][entry[1].index(b"queue") + 1] = b"other-queue"  # the index disagrees with the JSON
    decoded = decode_bodies(bodies_of([entry]), 1 << 20)
    row = decoded.table.to_pylist()[0]
    assert row["queue"] == "payments"
    tags = dict(row["tags"])
    assert tags["go.stream.queue"] == "other-queue" and tags["go.stream.shard"] == "7"
    assert "go.stream.job_id" not in tags and "go.stream.outcome" not in tags  # equal duplicates add nothing


def test_fields_in_any_order_and_beside_our_forms():
    go = go_entry(1, go_job())
    go[1] = go[1][2:] + go[1][:2]  # go-redis sends a map: any field order
    ours = [b"1-0", [b"data", b'{"job_id":"d","queue":"q","outcome":"retry","enqueue_time":1705314600123}']]
    decoded = decode_bodies(bodies_of([ours, go]), 1 << 20)
    assert decoded.rejects == [] and list(decoded.rows) == [0, 1]
    assert decoded.table.column("job_id").to_pylist() == ["d", "go-1"]


def test_bad_job_data_is_refused_with_a_reason():
    entries = [[b"1-0", [b"job_data", b"{oops", b"job_id", b"x"]], [b"1-1", [b"job_data", b"[1]"]]]
    reasons = [reason for _, reason in decode_bodies(bodies_of(entries), 1 << 20).rejects]
    assert reasons[0].startswith("invalid JSON in job_data field")
    assert reasons[1] == "job_data field must hold a JSON object, got list"


def test_go_entries_reach_both_tiers_and_the_dead_letter_stream(config, redis_client, warm, cold):
    config = config.replace("pipeline", stream_key=GO_STREAM)
    config = config.replace("retention", payload_sampling_rate=1.0)
    good = go_job(started_at=OMIT)
    canceled = go_job(job_id="go-2", outcome="canceled", completed_at="0001-01-01T00:00:00Z",
                      payload_snapshot=base64.b64encode(b"\xff\xfe").decode())
    unset = go_job(job_id="go-3", enqueued_at="0001-01-01T00:00:00Z")
    for job in (good, canceled, unset):
        redis_client.xadd(GO_STREAM, go_fields(job))

    metrics = ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)

    assert metrics.archived == 2 and metrics.dead_lettered == 1
    warm_rows = warm.backend.query_arrow(
        "SELECT job_id, toString(outcome) AS outcome, start_time, end_time, tenant_id, "
        "tags['go.job_type'] AS job_type, payload_sample FROM jobs_archive ORDER BY job_id").to_pylist()
    assert [(r["job_id"], r["outcome"], r["tenant_id"], r["job_type"]) for r in warm_rows] == [
        ("go-1", "success", "acme", "charge"), ("go-2", "cancelled", "acme", "charge")]
    assert warm_rows[0]["start_time"] is None and warm_rows[1]["end_time"] is None
    assert warm_rows[0]["payload_sample"] == '{"order":42,"note":"<b>café</b>"}'
    assert warm_rows[1]["payload_sample"] == "//4="
    cold_rows = sorted(cold_table(cold).select(["job_id", "outcome", "tags"]).to_pylist(), key=lambda r: r["job_id"])
    assert [(r["job_id"], r["outcome"], dict(r["tags"])["go.job_type"]) for r in cold_rows] == [
        ("go-1", "success", "charge"), ("go-2", "cancelled", "charge")]
    (_, dead), = redis_client.xrange(f"{GO_STREAM}:dlq")
    assert "enqueued_at is Go's zero time" in dead[b"_reason"].decode()
    assert dead[b"job_data"] == go_marshal(unset) and dead[b"job_id"] == b"go-3"
    assert redis_client.xpending(GO_STREAM, "archive-exporter")["pending"] == 0
