"""lengthwise pipeline library: chunking, synthesis, tokenized shards.

No Prefect here and no torch at import time: stage functions are plain Python, called by the CLI,
by the Prefect flows in ``flows/`` and by users directly.
"""
