"""Reading source documents and writing/reading contract shards."""
