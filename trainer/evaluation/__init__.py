"""Long-context evaluation: retrieval probes by length x depth, perplexity and QA accuracy by length."""
