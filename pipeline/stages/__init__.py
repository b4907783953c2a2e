"""Stage functions over shards: what the CLI and the Prefect flows call."""
