"""Keeping the archive in shape: retention of each tier (and, later, compaction and GDPR erasure)."""
