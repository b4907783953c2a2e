"""Reading source documents: good files are read, bad ones are reported, never fatal."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.readers import InputProblem, read_documents


def test_reads_sample_corpus(sample_corpus):
    docs = [d for d in read_documents([sample_corpus]) if not isinstance(d, InputProblem)]
    formats = {d.format for d in docs}
    assert {"md", "rst", "txt"} <= formats
    assert len(docs) == len(
        list(sample_corpus.glob("*.md"))
        + list(sample_corpus.glob("*.rst"))
        + list(sample_corpus.glob("*.txt"))
    )


def test_bad_files_are_reported_and_good_ones_kept(tmp_path):
    (tmp_path / "good.md").write_text("# Title\n\nBody text.\n")
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02 binary")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    out = list(read_documents([tmp_path, tmp_path / "missing.txt"]))
    docs = [d for d in out if not isinstance(d, InputProblem)]
    problems = {p.source.split("/")[-1]: p.reason for p in out if isinstance(p, InputProblem)}
    assert [d.title for d in docs] == ["good"]
    assert "empty" in problems["empty.txt"]
    assert "binary" in problems["binary.txt"]
    assert "UTF-8" in problems["latin1.txt"] and "iconv" in problems["latin1.txt"]
    assert "no such file" in problems["missing.txt"]


def test_jsonl_and_parquet_rows(tmp_path):
    rows = [{"text": "first document"}, {"text": ""}, {"body": "x"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pq.write_table(pa.table({"text": ["parquet doc"]}), tmp_path / "p.parquet")
    out = list(read_documents([tmp_path]))
    docs = [d.text for d in out if not isinstance(d, InputProblem)]
    problems = [p.source for p in out if isinstance(p, InputProblem)]
    assert docs == ["first document", "parquet doc"]
    assert [p.split("/")[-1] for p in problems] == ["d.jsonl:2", "d.jsonl:3"]
