"""Epoch times sent as JSON floats, as JavaScript producers write them (``Date.now() / 1`` after any
arithmetic, ``1.7328e12`` from other languages): a number of milliseconds is a time whatever its
spelling, on every producer form and for every time field. A fraction of a millisecond is kept to the
microsecond (rounded), as times are held in microseconds until the tiers store them; NaN, infinities and
numbers past the range are dead-lettered with a reason naming the field."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from exporter.batch import bodies_of
from exporter.decode import decode_bodies
from exporter.pipeline import ExportPipeline
from tests.helpers import cold_table
from tests.test_go_producer import GO_STREAM, OMIT, go_job, go_marshal

TIME_FIELDS = ("enqueue_time", "start_time", "end_time")
GO_NAMES = {"enqueue_time": "enqueued_at", "start_time": "started_at", "end_time": "completed_at"}

# (as the producer spells the number, the UTC time it stands for)
SPELLINGS = [
    ("1.7328e12", "2024-11-28T13:20:00+00:00"),
    ("1.7328E+12", "2024-11-28T13:20:00+00:00"),
    ("17328e8", "2024-11-28T13:20:00+00:00"),
    ("1732800000000.0", "2024-11-28T13:20:00+00:00"),
    ("1732800000123.0", "2024-11-28T13:20:00.123000+00:00"),
    ("1732800000123.5", "2024-11-28T13:20:00.123500+00:00"),  # fractions of a millisecond are kept
    ("1732800000123.4567", "2024-11-28T13:20:00.123457+00:00"),  # to the nearest microsecond
    ("1.5", "1970-01-01T00:00:00.001500+00:00"),
    ("-0.0", "1970-01-01T00:00:00+00:00"),
    ("-1000.25", "1969-12-31T23:59:58.999750+00:00"),
]

# (the number or text, the dead-letter reason it gets)
REFUSED = [
    ("1e300", "field '{field}' epoch milliseconds out of range: 1e+300"),
    ("-1e400", "field '{field}' epoch milliseconds out of range: -inf"),  # past a double (the Go form: below)
    ("-1.7e16", "field '{field}' epoch milliseconds out of range: -1.7e+16"),
    ("12345678901234567", "field '{field}' epoch milliseconds out of range: 1.2345678901234568e+16"),
    ("1e14", "field '{field}' outside 1900..2299: "),  # a number, but in the year 5138
    ('"NaN"', "field '{field}' is not an RFC 3339 time or epoch milliseconds: 'NaN'"),
    ('"Infinity"', "field '{field}' is not an RFC 3339 time or epoch milliseconds: 'Infinity'"),
    ('"-inf"', "field '{field}' is not an RFC 3339 time or epoch milliseconds: '-inf'"),
    ('"1.7e12x"', "field '{field}' is not an RFC 3339 time or epoch milliseconds: '1.7e12x'"),
]


def data_json(i: int, field: str, spelling: str) -> bytes:
    """A ``data`` value with one time written exactly as ``spelling`` (the JSON text of the number)."""
    times = {"enqueue_time": '"2024-01-15T10:30:00Z"', field: spelling}
    members = [f'"job_id":"j{i}"', '"queue":"payments"', '"outcome":"success"',
               *(f'"{name}":{text}' for name, text in times.items())]
    return ("{" + ",".join(members) + "}").encode()


def data_entry(i: int, field: str, spelling: str) -> list:
    return [f"1-{i}".encode(), [b"data", data_json(i, field, spelling)]]


def flat_entry(i: int, field: str, text: str) -> list:
    fields = {"job_id": f"j{i}", "queue": "payments", "outcome": "success", "enqueue_time": "2024-01-15T10:30:00Z",
              field: text}
    return [f"1-{i}".encode(), [item.encode() for pair in fields.items() for item in pair]]


def go_entry(i: int, field: str, spelling: str) -> list:
    """The Go form with one of its times as a JSON number (what a JavaScript imitation of it sends)."""
    job = go_job(job_id=f"go-{i}", started_at=OMIT, completed_at=OMIT)
    text = go_marshal({**job, GO_NAMES[field]: "@"}).replace(b'"@"', spelling.encode())
    return [f"1-{i}".encode(), [b"job_data", text, b"job_id", job["job_id"].encode(), b"queue", b"payments",
                                b"outcome", b"success"]]


def decode(*entries: list):
    return decode_bodies(bodies_of(list(entries)), 1 << 20)


def time_of(decoded, field: str) -> str:
    assert decoded.rejects == [], decoded.rejects
    return decoded.table.column(field)[0].as_py().isoformat()


@pytest.fixture
def fast_path_only(monkeypatch):
    """The data form's batch must be decoded by the columnar path alone."""
    def no_per_record_path(*args):
        raise AssertionError("the data form fell back to the per-record path")

    monkeypatch.setattr("exporter.decode._decode_records", no_per_record_path)


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize(("spelling", "iso"), SPELLINGS)
def test_a_float_in_the_data_form_is_a_time_on_the_fast_path(field, spelling, iso, fast_path_only):
    assert time_of(decode(data_entry(0, field, spelling)), field) == iso


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize(("spelling", "iso"), SPELLINGS)
def test_a_float_in_the_flat_form_is_a_time(field, spelling, iso):
    assert time_of(decode(flat_entry(0, field, spelling)), field) == iso


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize(("spelling", "iso"), SPELLINGS)
def test_a_float_in_the_go_form_is_a_time(field, spelling, iso):
    assert time_of(decode(go_entry(0, field, spelling)), field) == iso


@pytest.mark.parametrize("field", TIME_FIELDS)
def test_a_float_written_as_a_json_string_reads_like_a_quoted_integer(field, fast_path_only):
    decoded = decode(data_entry(0, field, '"1.7328e12"'), data_entry(1, field, '"1732800000000"'))
    assert decoded.rejects == []
    assert decoded.table.column(field).to_pylist()[0] == decoded.table.column(field).to_pylist()[1]


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize(("text", "reason"), REFUSED)
@pytest.mark.parametrize("form", ["data", "flat", "go"])
def test_nan_infinities_and_numbers_out_of_range_are_refused_with_a_reason(field, text, reason, form):
    if form == "data":
        entry = data_entry(0, field, text)
    elif form == "flat":
        entry = flat_entry(0, field, text.strip('"'))
    else:
        entry = go_entry(0, field, text)
    if (form, text) == ("go", "-1e400"):  # the Go form's JSON is parsed whole, by a parser that refuses it
        reason = "invalid JSON in job_data field: number is infinity when parsed as double"
    decoded = decode(entry, data_entry(1, field, "1.7328e12"))
    assert [pos for pos, _ in decoded.rejects] == [0] and decoded.table.num_rows == 1
    assert decoded.rejects[0][1].startswith(reason.format(field=field)), decoded.rejects


def test_a_nan_literal_is_not_json_and_says_so():
    decoded = decode(data_entry(0, "enqueue_time", "NaN"), data_entry(1, "start_time", "1.5"))
    assert [pos for pos, _ in decoded.rejects] == [0] and decoded.rejects[0][1].startswith("invalid JSON in data field")
    assert decoded.table.column("job_id").to_pylist() == ["j1"]


def test_the_per_record_path_reads_floats_as_the_fast_path_does():
    entries = [data_entry(i, field, spelling) for i, (spelling, _) in enumerate(SPELLINGS) for field in TIME_FIELDS]
    fast = decode(*entries)
    slow = decode(*entries, [b"1-99", [b"data", b"{not json"]])  # one bad entry: the slice goes per record
    assert [pos for pos, _ in slow.rejects] == [len(entries)]
    assert slow.table.to_pylist() == fast.table.to_pylist()


def test_floats_of_every_form_reach_both_tiers_and_bad_ones_the_dead_letters(config, redis_client, warm, cold):
    """XADD as producers do, export once, read the rows back: a float is a time on every form."""
    config = config.replace("pipeline", stream_key=GO_STREAM)
    hour = int(time.time()) // 3600 * 3600 - 3600  # inside the warm window
    iso = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%d %H:%M:%S")
    redis_client.xadd(GO_STREAM, {"data": data_json(0, "enqueue_time", f"{hour / 1000:.3f}e6")})
    redis_client.xadd(GO_STREAM, {"job_id": "j1", "queue": "payments", "outcome": "success",
                                  "enqueue_time": f"{hour}123.0", "end_time": f"{hour}999.75"})
    go_fields = go_entry(2, "enqueue_time", f"{hour}456.0")[1]
    redis_client.xadd(GO_STREAM, dict(zip(go_fields[::2], go_fields[1::2], strict=True)))
    redis_client.xadd(GO_STREAM, {"data": data_json(3, "end_time", '"NaN"')})

    metrics = ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)

    assert metrics.archived == 3 and metrics.dead_lettered == 1
    rows = warm.backend.query_arrow("SELECT job_id, toString(enqueue_time) AS enqueue, toString(end_time) AS end "
                                    "FROM jobs_archive ORDER BY job_id").to_pylist()
    assert [(r["job_id"], r["enqueue"], r["end"]) for r in rows] == [
        ("go-2", f"{iso}.456", None), ("j0", f"{iso}.000", None),
        ("j1", f"{iso}.123", f"{iso}.999")]  # the tiers keep milliseconds
    cold_times = {r["job_id"]: r["enqueue_time"] for r in cold_table(cold).to_pylist()}
    assert cold_times["go-2"] == datetime.fromtimestamp(hour + 0.456, UTC)
    (_, dead), = redis_client.xrange(f"{GO_STREAM}:dlq")
    assert dead[b"_reason"] == b"field 'end_time' is not an RFC 3339 time or epoch milliseconds: 'NaN'"
