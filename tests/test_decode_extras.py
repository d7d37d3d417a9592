"""Fields a producer sends that the record has no column for are kept, as the tag ``extra.<name>``, on
the flat form (a stream field each) and the ``data`` form (a key of its JSON) alike, as the Go form keeps
its own as ``go.<key>``. The producer's own ``tags`` come first and win; extras follow, by name. Values:
text as sent; JSON integers as digits, doubles as the shortest text that reads back the same double
(``2.0`` as ``2``), booleans ``true``/``false``, objects and arrays as JSON text; a JSON null is no value."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from exporter.batch import bodies_of
from exporter.decode import decode_bodies
from exporter.pipeline import ExportPipeline
from tests.helpers import cold_table
from tests.test_go_producer import go_entry, go_job

BASE = {"job_id": "j0", "queue": "payments", "outcome": "success", "enqueue_time": "2024-01-15T10:30:00Z"}


def data_entry(i: int, **fields) -> list:
    return [f"1-{i}".encode(), [b"data", orjson.dumps({**BASE, "job_id": f"j{i}", **fields})]]


def raw_data_entry(i: int, members: str) -> list:
    """A ``data`` entry whose extra members are written exactly as ``members`` (JSON text)."""
    return [f"1-{i}".encode(), [b"data", orjson.dumps({**BASE, "job_id": f"j{i}"})[:-1] + b"," + members.encode()
                                + b"}"]]


def flat_entry(i: int, **fields: str) -> list:
    items = {**BASE, "job_id": f"j{i}", **fields}
    return [f"1-{i}".encode(), [part.encode() for pair in items.items() for part in pair]]


def decode(*entries: list):
    return decode_bodies(bodies_of(list(entries)), 1 << 20)


def tags_of(decoded) -> list[list[tuple[str, str]]]:
    assert decoded.rejects == [], decoded.rejects
    return decoded.table.column("tags").to_pylist()


@pytest.fixture
def fast_path_only(monkeypatch):
    def no_per_record_path(*args):
        raise AssertionError("the data form fell back to the per-record path")

    monkeypatch.setattr("exporter.decode._decode_records", no_per_record_path)


def test_flat_fields_without_a_column_are_kept_as_extra_tags_after_the_producers_tags():
    entry = flat_entry(0, region="eu-west-1", tags='{"env":"prod"}', attempt_id="7", note="")
    assert tags_of(decode(entry)) == [[("env", "prod"), ("extra.attempt_id", "7"), ("extra.note", ""),
                                       ("extra.region", "eu-west-1")]]


def test_data_form_keys_without_a_column_are_kept_on_the_fast_path(fast_path_only):
    members = ('"region":"eu","attempt":7,"big":12345678901234567890,"retried":true,"ratio":1.5,"whole":2.0,'
               '"gone":null,"queue_time":2.50')
    assert tags_of(decode(raw_data_entry(0, members))) == [[
        ("extra.attempt", "7"), ("extra.big", "1.2345678901234567e+19"), ("extra.queue_time", "2.50"),
        ("extra.ratio", "1.5"), ("extra.region", "eu"), ("extra.retried", "true"), ("extra.whole", "2")]]


def test_nested_values_are_kept_as_json_text():
    entry = raw_data_entry(0, '"meta":{"a":[1,2],"b":"x"},"list":["p",null]')
    assert tags_of(decode(entry)) == [[("extra.list", '["p",null]'), ("extra.meta", '{"a":[1,2],"b":"x"}')]]


@pytest.mark.parametrize("form", ["data", "flat"])
def test_a_tag_the_producer_set_wins_over_a_field_of_the_same_name(form):
    if form == "data":
        entry = data_entry(0, region="theirs", tags={"extra.region": "mine", "env": "prod"})
    else:
        entry = flat_entry(0, region="theirs", tags='{"extra.region":"mine","env":"prod"}')
    assert tags_of(decode(entry)) == [[("extra.region", "mine"), ("env", "prod")]]


def test_rows_keep_their_own_extras_only():
    entries = [data_entry(0, a="1"), data_entry(1), data_entry(2, b="2", tags={"t": "x"}), data_entry(3, a="3", b="4")]
    assert tags_of(decode(*entries)) == [[("extra.a", "1")], [], [("t", "x"), ("extra.b", "2")],
                                         [("extra.a", "3"), ("extra.b", "4")]]


def test_the_per_record_path_keeps_extras_and_tags_as_the_fast_path_does():
    entries = [raw_data_entry(0, '"z":"last","a":1,"f":2.0,"t":false,"tags":{"w":2.0,"n":3}'),
               raw_data_entry(1, '"f":0.1,"tags":{"extra.f":"mine"}'),
               raw_data_entry(2, '"a":-5,"start_time":1705314600000.0')]
    fast = decode(*entries)
    slow = decode(*entries, [b"1-9", [b"data", b"{not json"]])  # one bad entry: the slice goes per record
    assert [pos for pos, _ in slow.rejects] == [3]
    assert slow.table.to_pylist() == fast.table.to_pylist()
    assert fast.table.column("tags").to_pylist() == [
        [("w", "2"), ("n", "3"), ("extra.a", "1"), ("extra.f", "2"), ("extra.t", "false"), ("extra.z", "last")],
        [("extra.f", "mine")],
        [("extra.a", "-5")]]


def test_text_that_looks_like_a_naive_time_is_kept_as_written():
    """pyarrow.json reads such text as a timestamp, whose text is another ('2024-01-15 00:00:00')."""
    tagged = data_entry(0, tags={"since": "2024-01-15T10:30:00", "env": "prod"})
    assert tags_of(decode(tagged)) == [[("since", "2024-01-15T10:30:00"), ("env", "prod")]]
    assert tags_of(decode(data_entry(1, day="2024-01-15"))) == [[("extra.day", "2024-01-15")]]


def test_the_go_form_keeps_its_own_names():
    tags = dict(tags_of(decode(go_entry(0, go_job())))[0])
    assert "go.job_type" in tags and not any(key.startswith("extra.") for key in tags)


def test_extras_of_both_forms_reach_both_tiers(config, redis_client, warm, cold):
    """XADD as producers do, export once, and query the kept fields back as tags."""
    enqueued = datetime.now(UTC).isoformat()  # inside the warm window
    redis_client.xadd("completed_jobs", {"job_id": "flat-1", "queue": "payments", "outcome": "success",
                                         "enqueue_time": enqueued, "region": "eu-west-1", "shard": "7"})
    redis_client.xadd("completed_jobs", {"data": orjson.dumps({**BASE, "job_id": "data-1", "enqueue_time": enqueued,
                                                               "region": "us-east-1", "attempt": 3})})

    metrics = ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)

    assert metrics.archived == 2 and metrics.dead_lettered == 0
    rows = warm.backend.query_arrow("SELECT job_id, tags['extra.region'] AS region, tags['extra.shard'] AS shard, "
                                    "tags['extra.attempt'] AS attempt FROM jobs_archive ORDER BY job_id").to_pylist()
    assert rows == [{"job_id": "data-1", "region": "us-east-1", "shard": "", "attempt": "3"},
                    {"job_id": "flat-1", "region": "eu-west-1", "shard": "7", "attempt": ""}]
    cold_tags = {r["job_id"]: dict(r["tags"]) for r in cold_table(cold).to_pylist()}
    assert cold_tags == {"data-1": {"extra.attempt": "3", "extra.region": "us-east-1"},
                         "flat-1": {"extra.region": "eu-west-1", "extra.shard": "7"}}
