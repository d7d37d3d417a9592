"""The ClickHouse engine behind both tiers: the backend interface, its two implementations (chdb in-process,
a server over the native protocol), the URL registry that picks one, and SQL rendering helpers."""
