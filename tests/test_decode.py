import orjson
import pyarrow as pa
import pytest

from exporter.batch import bodies_of
from exporter.decode import decode_bodies
from exporter.record import RECORD_SCHEMA


def decode(entries: list, max_record_size: int):
    """Decode raw ``[id, fields]`` entries as the pipeline does."""
    return decode_bodies(bodies_of(entries), max_record_size)


def data_entry(i: int, **fields) -> list:
    record = {"job_id": f"j{i}", "queue": "payments", "outcome": "success",
              "enqueue_time": "2024-01-15T10:30:00.123456789+02:00"}
    record.update(fields)
    return [f"1-{i}".encode(), [b"data", orjson.dumps(record)]]


def flat_entry(i: int, **fields) -> list:
    record = {"job_id": f"j{i}", "queue": "payments", "outcome": "success",
              "enqueue_time": "2024-01-15T10:30:00.123456789+02:00"}
    record.update(fields)
    items = []
    for key, value in record.items():
        items += [key.encode(), (orjson.dumps(value) if isinstance(value, dict) else str(value).encode())]
    return [f"1-{i}".encode(), items]


def test_data_form_decodes_to_the_record_schema():
    decoded = decode([data_entry(0, priority=3, tags={"region": "eu"}, retries=2)], 1 << 20)
    assert decoded.table.schema == RECORD_SCHEMA
    row = decoded.table.to_pylist()[0]
    assert row["enqueue_time"].isoformat() == "2024-01-15T08:30:00.123456+00:00"  # offset applied, ns -> us
    assert row["priority"] == 3 and row["retries"] == 2
    assert row["tags"] == [("region", "eu")]
    assert row["schema_version"] == "1.0.0"
    assert decoded.rejects == []


def test_flat_form_decodes_like_the_data_form():
    fields = {"priority": 2, "tags": {"a": "b"}, "error_msg": "boom", "start_time": 1705307400123}
    data = decode([data_entry(0, **fields)], 1 << 20).table
    flat = decode([flat_entry(0, **fields)], 1 << 20).table
    assert flat.to_pylist() == data.to_pylist()


@pytest.mark.parametrize(("text", "iso"), [
    ("2024-01-15T10:30:00Z", "2024-01-15T10:30:00+00:00"),
    ("2024-01-15T10:30:00.5-05:30", "2024-01-15T16:00:00.500000+00:00"),
    ("2024-01-15T10:30:00.000000001+00:00", "2024-01-15T10:30:00+00:00"),
    ("2290-06-01T12:00:00.123456789Z", "2290-06-01T12:00:00.123456+00:00"),  # past nanoseconds' 2262
    (1705314600123, "2024-01-15T10:30:00.123000+00:00"),
])
def test_times_go_style_and_epoch_millis(text, iso):
    decoded = decode([data_entry(0, enqueue_time=text)], 1 << 20)
    assert decoded.table.column("enqueue_time")[0].as_py().isoformat() == iso


def test_mixed_json_types_in_one_batch_take_the_slow_path_and_agree():
    entries = [data_entry(0, enqueue_time=1705314600123, priority="4"), data_entry(1)]
    decoded = decode(entries, 1 << 20)
    assert decoded.rejects == []
    assert decoded.table.column("priority").to_pylist() == [4, 0]
    assert decoded.table.column("job_id").to_pylist() == ["j0", "j1"]


def test_each_bad_entry_gets_a_reason_and_good_ones_survive():
    entries = [
        data_entry(0),
        [b"1-1", [b"data", b"{not json"]],
        data_entry(2, job_id=""),
        data_entry(3, outcome="exploded"),
        data_entry(4, enqueue_time="last tuesday"),
        [b"1-5", [b"data", b"x" * 300]],
        data_entry(6, priority=1000),
        data_entry(7, queue={"nested": 1}),
        [b"1-8", [b"data", b"[1, 2]"]],
        data_entry(9, enqueue_time="0001-01-01T00:00:00Z"),
        data_entry(10),
    ]
    decoded = decode(entries, max_record_size=250)
    assert decoded.table.column("job_id").to_pylist() == ["j0", "j10"]
    assert list(decoded.rows) == [0, 10]
    reasons = dict(decoded.rejects)
    assert "invalid JSON" in reasons[1]
    assert reasons[2] == "missing job_id"
    assert "unknown outcome 'exploded'" in reasons[3]
    assert "enqueue_time" in reasons[4] and "last tuesday" in reasons[4]
    assert reasons[5].startswith("oversize: 304 bytes")
    assert "priority" in reasons[6] and "out of range" in reasons[6]
    assert "queue" in reasons[7]
    assert "JSON object" in reasons[8]
    assert "outside 1900..2299" in reasons[9]
    assert len(decoded.rejects) == 9


def test_json_with_raw_newlines_between_tokens_still_decodes():
    pretty = orjson.dumps({"job_id": "p", "queue": "q", "outcome": "failed", "enqueue_time": "2024-01-15T10:30:00Z"},
                          option=orjson.OPT_INDENT_2)
    decoded = decode([[b"1-0", [b"data", pretty]], data_entry(1)], 1 << 20)
    assert decoded.table.column("job_id").to_pylist() == ["p", "j1"]


def test_object_payload_sample_is_kept_as_json_text():
    decoded = decode([data_entry(0, payload_sample={"a": 1})], 1 << 20)
    assert decoded.table.column("payload_sample").to_pylist() == ['{"a":1}']


def test_tags_from_json_objects_become_per_row_maps():
    entries = [data_entry(0, tags={"a": "1", "b": "2"}), data_entry(1), data_entry(2, tags={"c": 3})]
    tags = decode(entries, 1 << 20).table.column("tags").to_pylist()
    assert tags == [[("a", "1"), ("b", "2")], [], [("c", "3")]]


def test_empty_batch():
    decoded = decode([], 1 << 20)
    assert decoded.table.num_rows == 0 and decoded.table.schema == RECORD_SCHEMA
    assert isinstance(decoded.table, pa.Table)


def test_times_without_offset_are_refused_on_every_path():
    fast = decode([data_entry(0, enqueue_time="2024-01-15 10:30:00")], 1 << 20)
    slow = decode([flat_entry(0, enqueue_time="2024-01-15 10:30:00")], 1 << 20)
    assert fast.table.num_rows == 0 and slow.table.num_rows == 0
    assert "not an RFC 3339 time" in fast.rejects[0][1] and "not an RFC 3339 time" in slow.rejects[0][1]


def test_batch_of_epoch_millis_only_stays_on_the_fast_path():
    decoded = decode([data_entry(i, enqueue_time=1705314600000 + i) for i in range(3)], 1 << 20)
    assert [t.as_py().microsecond for t in decoded.table.column("enqueue_time")] == [0, 1000, 2000]


def test_a_batch_decoded_in_slices_matches_one_decoded_whole(monkeypatch):
    entries = [data_entry(i, enqueue_time=1705314600000 + i if i % 3 else "2024-01-15T10:30:00Z",
                          tags={f"k{i % 4}": "v"}) for i in range(40)]
    entries[7] = [b"1-7", [b"data", b"{broken"]]
    entries[22] = data_entry(22, outcome="exploded")
    whole = decode(entries, 1 << 20)
    monkeypatch.setattr("exporter.decode._PARSE_SLICE_BYTES", 600)  # a few entries per slice
    sliced = decode(entries, 1 << 20)
    assert sliced.table.to_pylist() == whole.table.to_pylist()
    assert list(sliced.rows) == list(whole.rows) == [i for i in range(40) if i not in (7, 22)]
    assert sliced.rejects == whole.rejects and [pos for pos, _ in sliced.rejects] == [7, 22]


def test_data_beside_other_fields_is_refused_with_the_real_reason():
    entry = [b"1-0", [b"data", orjson.dumps({"job_id": "j0"}), b"foo", b"1", b"bar", b"2"]]
    decoded = decode([entry, data_entry(1)], 1 << 20)
    assert decoded.table.column("job_id").to_pylist() == ["j1"]
    assert decoded.rejects == [(0, "entry has a 'data' field and other fields (foo, bar): expected 'data' alone, "
                                   "the flat form, or the Go form (job_data)")]


REVERSED = {"start_time": "2024-01-15T10:30:00.5Z", "end_time": "2024-01-15T12:29:59+02:00"}


def test_end_before_start_is_refused_on_the_fast_path(monkeypatch):
    def no_per_record_path(*args):
        raise AssertionError("the fast path must refuse it by itself")

    monkeypatch.setattr("exporter.decode._decode_records", no_per_record_path)
    decoded = decode([data_entry(0), data_entry(1, **REVERSED), data_entry(2, start_time=REVERSED["end_time"],
                                                                          end_time=REVERSED["start_time"])], 1 << 20)
    assert decoded.table.column("job_id").to_pylist() == ["j0", "j2"]
    assert decoded.rejects == [(1, "end_time 2024-01-15T10:29:59+00:00 is before start_time "
                                   "2024-01-15T10:30:00.500000+00:00")]


def test_end_before_start_is_refused_on_the_per_record_path():
    decoded = decode([flat_entry(0, **REVERSED), flat_entry(1, end_time=REVERSED["start_time"])], 1 << 20)
    assert decoded.table.column("job_id").to_pylist() == ["j1"]  # an end without a start is fine
    assert decoded.rejects == [(0, "end_time 2024-01-15T10:29:59+00:00 is before start_time "
                                   "2024-01-15T10:30:00.500000+00:00")]
