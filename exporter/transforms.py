"""Batch transforms before storage: payload sampling and PII redaction, vectorized over Arrow.

Sampling decisions are drawn from a generator seeded by the batch identity, so a batch replayed after
a crash is sampled exactly as the first time and both tiers hold the same rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# RE2 patterns (pyarrow.compute), most specific first so a card number is not taken for a phone.
PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "card": r"\b(?:\d[ -]?){12,18}\d\b",
    "phone": r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}\b",
    "ipv4": r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b",
}


class PIIRedactor:
    """Replaces e-mail addresses, card and phone numbers and IPv4 addresses with a typed marker."""

    def __init__(self, patterns: dict[str, str] | None = None) -> None:
        self.patterns = dict(PII_PATTERNS if patterns is None else patterns)

    def redact(self, values: pa.Array) -> pa.Array:
        for kind, pattern in self.patterns.items():
            values = pc.replace_substring_regex(values, pattern, f"[REDACTED:{kind}]")
        return values

    def apply(self, records: pa.Table, columns: tuple[str, ...] = ("payload_sample", "error_msg")) -> pa.Table:
        for name in columns:
            index = records.schema.get_field_index(name)
            records = records.set_column(index, records.schema.field(index), self.redact(records.column(name)))
        return records


class PayloadSampler:
    """Keeps every failure's payload sample and a ``rate`` share of the others within the size cap."""

    def __init__(self, rate: float, max_size: int) -> None:
        self.rate = rate
        self.max_size = max_size

    def apply(self, records: pa.Table, batch_id: str) -> pa.Table:
        n = records.num_rows
        if n == 0:
            return records
        seed = int.from_bytes(hashlib.blake2b(batch_id.encode(), digest_size=8).digest(), "little")
        lucky = pa.array(np.random.default_rng(seed).random(n) < self.rate)
        samples = records.column("payload_sample")
        small = pc.and_(
            pc.less_equal(records.column("payload_size"), self.max_size),
            pc.less_equal(pc.binary_length(samples), self.max_size),
        )
        keep = pc.and_(small, pc.or_(pc.equal(records.column("outcome"), "failed"), lucky))
        kept = pc.if_else(pc.fill_null(keep, False), samples, pa.scalar(None, pa.string()))
        index = records.schema.get_field_index("payload_sample")
        return records.set_column(index, records.schema.field(index), kept)
