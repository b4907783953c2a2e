"""Tokenize + shard throughput on 1 and 2 worker processes, and peak memory as input grows.

Input: teacher-free records (real corpus haystacks) at 512-16K tokens. Each measurement runs in a
fresh subprocess so peak RSS (ru_maxrss) belongs to that build alone.
Run: ``python benchmarks/shards.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "shards.json"

MAKE_QA = """
import sys
from pipeline.config import ChunkerConfig, SynthConfig, TeacherConfig
from pipeline.stages.chunk import chunk_corpus
from pipeline.stages.synth import synthesize_corpus
work, per = sys.argv[1], int(sys.argv[2])
chunk_corpus([{corpus!r}], work + '/chunks', ChunkerConfig(max_tokens=512))
synthesize_corpus([work + '/chunks'], work + '/qa', SynthConfig(target_lengths=[512, 1024, 2048, 4096, 8192, 16384],
                  teacher_free_per_length=per), TeacherConfig(kind='none'))
"""

BUILD = """
import json, resource, sys, time
from pipeline.config import ShardConfig
from pipeline.stages.shard import build_shards
qa, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
res = build_shards([qa], out, ShardConfig(run_tokens=2_000_000), workers=workers)
wall = time.perf_counter() - t
print(json.dumps({{"rows": res.manifest.rows, "tokens": res.manifest.tokens, "wall_s": round(wall, 2),
                  "ktok_per_s": round(res.manifest.tokens / wall / 1e3, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def main() -> None:
    corpus = str(REPO / "samples" / "corpus")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for per in (4, 8, 16):  # records per (task, length): input grows 1x, 2x, 4x
            work = f"{tmp}/in{per}"
            subprocess.run([sys.executable, "-c", MAKE_QA.format(corpus=corpus), work, str(per)], check=True)
            for workers in (1, 2) if per == 8 else (1,):
                out = subprocess.run(
                    [sys.executable, "-c", BUILD.format(), f"{work}/qa", f"{work}/s{workers}", str(workers)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                row = {
                    "records_per_cell": per,
                    "workers": workers,
                    **json.loads(out.strip().splitlines()[-1]),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    OUT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
