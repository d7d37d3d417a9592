import pyarrow as pa

from exporter.batch import BatchOptimizer
from exporter.resilience import CircuitBreaker, backoff_delay
from exporter.schema_registry import SchemaDefinition, SchemaRegistry
from exporter.transforms import PayloadSampler, PIIRedactor
from tests.test_decode import data_entry, decode


def test_pii_is_redacted_with_typed_markers():
    text = ('{"email":"ana.434@example.com","phone":"+1 415-555-0134","card":"4111 1111 1111 1111",'
            '"ip":"10.1.2.3","order":58202938,"when":"2024-01-15T10:30:00Z"}')
    redacted = PIIRedactor().redact(pa.array([text, None]))[0].as_py()
    assert "[REDACTED:email]" in redacted and "example.com" not in redacted
    assert "[REDACTED:phone]" in redacted and "415-555" not in redacted
    assert "[REDACTED:card]" in redacted and "4111" not in redacted
    assert "[REDACTED:ipv4]" in redacted
    assert "58202938" in redacted and "2024-01-15T10:30:00Z" in redacted  # plain numbers and times survive


def _records(n: int, outcome: str = "success", sample: str = "payload") -> pa.Table:
    entries = [data_entry(i, outcome=outcome, payload_sample=sample, payload_size=100) for i in range(n)]
    return decode(entries, 1 << 20).table


def test_sampler_keeps_failures_and_a_share_of_the_rest():
    sampler = PayloadSampler(rate=0.1, max_size=1024)
    kept = sampler.apply(_records(5000), "b1").column("payload_sample").drop_null()
    assert 350 < len(kept) < 650
    assert sampler.apply(_records(50, "failed"), "b1").column("payload_sample").null_count == 0


def test_sampling_is_deterministic_per_batch_identity():
    sampler = PayloadSampler(rate=0.5, max_size=1024)
    records = _records(200)
    first = sampler.apply(records, "batch-a").column("payload_sample")
    assert sampler.apply(records, "batch-a").column("payload_sample").equals(first)
    assert not sampler.apply(records, "batch-b").column("payload_sample").equals(first)


def test_sampler_drops_samples_over_the_size_cap_even_for_failures():
    sampler = PayloadSampler(rate=1.0, max_size=10)
    assert sampler.apply(_records(5, "failed", sample="x" * 11), "b").column("payload_sample").null_count == 5


def test_registry_migrates_older_versions_in_place_and_flags_unknown():
    registry = SchemaRegistry.default()
    registry.register(SchemaDefinition("0.9.0", ("job_id", "queue", "outcome")), migrate_to="1.0.0",
                      migration=lambda t: t.set_column(t.schema.get_field_index("tenant_id"), "tenant_id",
                                                       pa.array(["legacy"] * t.num_rows)))
    entries = [data_entry(0), data_entry(1, schema_version="0.9.0"), data_entry(2, schema_version="3.0.0"),
               data_entry(3, schema_version="0.9.0")]
    table, unknown = registry.conform(decode(entries, 1 << 20).table)
    assert table.column("job_id").to_pylist() == ["j0", "j1", "j2", "j3"]
    assert table.column("tenant_id").to_pylist() == ["", "legacy", "", "legacy"]
    assert table.column("schema_version").to_pylist() == ["1.0.0", "1.0.0", "3.0.0", "1.0.0"]
    assert unknown.to_pylist() == [False, False, True, False]


def test_batch_optimizer_follows_the_latency_target():
    optimizer = BatchOptimizer(1000, minimum=10, maximum=1000, target_latency=0.1)
    assert optimizer.observe(0.05) >= 1000  # low latency: stays at the ceiling
    optimizer = BatchOptimizer(1000, minimum=10, maximum=1000, target_latency=0.1, window=1)
    assert optimizer.observe(0.2) < 1000  # high latency: shrinks
    grow = BatchOptimizer(100, minimum=10, maximum=10_000, target_latency=1.0, window=1)
    sizes = [grow.observe(0.01) for _ in range(30)]
    assert sizes[-1] == 10_000 and sizes == sorted(sizes)
    fixed = BatchOptimizer(100, 10, 1000, 1.0, dynamic=False)
    assert fixed.observe(10) == 100


def test_circuit_breaker_opens_after_threshold_and_probes_after_cooldown():
    breaker = CircuitBreaker("s", threshold=3, cooldown=0.05)
    for _ in range(2):
        breaker.record_failure(RuntimeError("down"))
    assert breaker.state == "closed" and breaker.wait_time() == 0
    breaker.record_failure(RuntimeError("down"))
    assert breaker.state == "open" and breaker.wait_time() > 0
    import time

    time.sleep(0.06)
    assert breaker.state == "half-open" and breaker.wait_time() == 0
    breaker.record_success()
    assert breaker.state == "closed" and breaker.last_error == "RuntimeError: down"


def test_backoff_grows_with_jitter_and_caps():
    delays = [backoff_delay(a, 1.0, 8.0) for a in range(6)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0
    assert all(d <= 8.0 for d in delays) and delays[5] >= 4.0
