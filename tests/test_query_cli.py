"""`archives query` as a user runs it: SQL from a file or standard input, --limit, every format read
back equal to the result, a header even when empty, and the row count on standard error."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from archives_tui.cli import main
from exporter.query.writers import write, write_batches
from exporter.seed import seed_stream
from tests.test_outages import ROOT, write_config

SQL = ("SELECT job_id, queue, toString(outcome) AS outcome, retries, payload_sample, tags FROM jobs "
       "ORDER BY job_id")


@pytest.fixture
def exported(config, redis_client, tmp_path):
    config_file = write_config(tmp_path / "archives.yaml", config)
    seed_stream(redis_client, "completed_jobs", 120, failure_rate=0.5, seed=41)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    return config_file


def run(config_file, *args, capsys):
    code = main(["--config", str(config_file), "query", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_format_reads_back_as_the_result(exported, tmp_path, capsys):
    out = tmp_path / "all.parquet"
    assert run(exported, SQL, "--format", "parquet", "--output", str(out), capsys=capsys)[0] == 0
    reference = pq.read_table(out)
    assert reference.num_rows == 120
    rows = reference.to_pylist()
    for row in rows:
        row["tags"] = dict(row["tags"])

    code, text, err = run(exported, SQL, "--format", "json", capsys=capsys)
    assert code == 0 and json.loads(text) == rows and err.startswith("120 rows in ")
    code, text, _ = run(exported, SQL, "--format", "jsonl", capsys=capsys)
    assert [json.loads(line) for line in text.splitlines()] == rows
    code, text, _ = run(exported, SQL, "--format", "csv", capsys=capsys)
    csv = pacsv.read_csv(io.BytesIO(text.encode()), convert_options=pacsv.ConvertOptions(
        column_types={"retries": pa.uint16(), "payload_sample": pa.string()}, strings_can_be_null=True))
    assert csv.column("job_id").to_pylist() == reference.column("job_id").to_pylist()
    assert csv.column("payload_sample").to_pylist() == reference.column("payload_sample").to_pylist()
    assert [json.loads(t) for t in csv.column("tags").to_pylist()] == [r["tags"] for r in rows]
    code, text, _ = run(exported, SQL, "--format", "tsv", capsys=capsys)
    lines = text.splitlines()
    assert lines[0].split("\t") == reference.column_names and len(lines) == 121
    first = lines[1].split("\t")
    assert first[0] == rows[0]["job_id"] and json.loads(first[5]) == rows[0]["tags"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_an_empty_result_keeps_its_header(fmt):
    empty = pa.table({"job_id": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    out = io.BytesIO()
    write(empty, fmt, out)
    data = out.getvalue()
    expected = {"csv": b'"job_id","n"\n', "tsv": b"job_id\tn\n", "json": b"[]\n", "jsonl": b""}
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(data)).schema.names == ["job_id", "n"]
    else:
        assert data == expected[fmt]


def test_sql_from_a_file_or_standard_input_and_limit(exported, tmp_path, capsys):
    query = tmp_path / "q.sql"
    query.write_text("-- how many\nSELECT count() AS n FROM jobs;\n")
    assert run(exported, "-f", str(query), "--format", "csv", capsys=capsys)[1].splitlines()[1] == "120"
    done = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(exported), "query", "-f", "-",
                           "--format", "csv"], input="SELECT count() AS n FROM jobs", capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.splitlines()[1] == "120"
    code, text, err = run(exported, "SELECT job_id FROM jobs ORDER BY job_id", "--limit", "5", "--format", "csv",
                          capsys=capsys)
    assert code == 0 and len(text.splitlines()) == 6 and "5 rows in" in err and "cut at --limit 5" in err
    assert main(["--config", str(exported), "query"]) == 2
    assert "give the statement as an argument, with -f FILE" in capsys.readouterr().err


def test_version():
    done = subprocess.run([sys.executable, "-m", "archives_tui", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("archives 0.")


def test_maps_are_objects_and_pairs_stay_pairs_in_json():
    result = pa.table({
        "tags": pa.array([[("env", "prod")], []], pa.map_(pa.string(), pa.string())),
        "pairs": pa.array([[("a", "b")], []], pa.list_(pa.struct([("k", pa.string()), ("v", pa.string())]))),
    })
    out = io.BytesIO()
    write(result, "json", out)
    assert json.loads(out.getvalue()) == [{"tags": {"env": "prod"}, "pairs": [{"k": "a", "v": "b"}]},
                                          {"tags": {}, "pairs": []}]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_a_result_of_many_batches_reads_back_whole(fmt):
    rows = 25_000
    table = pa.table({"n": pa.array(range(rows), pa.int64()),
                      "tags": pa.array([[("k", str(i % 7))] for i in range(rows)], pa.map_(pa.string(), pa.string()))})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4096))
    out = io.BytesIO()
    assert write_batches(reader, fmt, out) == (rows, False)
    data = out.getvalue()
    tags = [{"k": str(i % 7)} for i in range(rows)]
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(data)).equals(table)
        return
    if fmt in ("json", "jsonl"):
        back = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]
        assert [r["n"] for r in back] == list(range(rows)) and [r["tags"] for r in back] == tags
        return
    lines = data.decode().splitlines()
    assert len(lines) == rows + 1
    cells = [line.split("," if fmt == "csv" else "\t", 1) for line in lines[1:]]
    assert [int(n) for n, _ in cells] == list(range(rows))
    texts = [t.strip('"').replace('""', '"') for _, t in cells] if fmt == "csv" else [t for _, t in cells]
    assert [json.loads(t) for t in texts] == tags


def test_an_export_stops_at_its_limit_and_says_there_is_more():
    table = pa.table({"n": pa.array(range(10_000), pa.int64())})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3000))
    out = io.BytesIO()
    assert write_batches(reader, "jsonl", out, limit=4500) == (4500, True)
    assert [json.loads(line)["n"] for line in out.getvalue().splitlines()] == list(range(4500))
