"""Bad rows of every reader kind: each is reported with file:line and skipped, the rest is kept."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.readers import InputProblem, read_documents


def _split(items):
    docs = [d for d in items if not isinstance(d, InputProblem)]
    problems = [p for p in items if isinstance(p, InputProblem)]
    return docs, problems


def test_jsonl_bad_lines_are_skipped_and_the_rest_of_the_file_kept(tmp_path):
    lines = [
        json.dumps({"text": "first good document"}),
        '{"text": "broken',  # invalid JSON
        json.dumps(["valid JSON", "but not an object"]),
        json.dumps("a string"),
        "",
        json.dumps({"text": "second good document"}),
        "\udcff\udcfe not UTF-8",  # written as the raw bytes ff fe
        json.dumps({"text": "third good document"}),
    ]
    (tmp_path / "a.jsonl").write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "another file still read"}) + "\n")
    docs, problems = _split(list(read_documents([tmp_path])))
    assert [d.text for d in docs] == [
        "first good document",
        "second good document",
        "third good document",
        "another file still read",
    ]
    where = {p.source.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert set(where) == {"a.jsonl:2", "a.jsonl:3", "a.jsonl:4", "a.jsonl:7"}
    assert "invalid JSON at column" in where["a.jsonl:2"]
    assert "list, not an object" in where["a.jsonl:3"] and "str, not an object" in where["a.jsonl:4"]
    assert "invalid UTF-8" in where["a.jsonl:7"]
    assert [d.source.rsplit("/", 1)[-1] for d in docs[:3]] == ["a.jsonl:1", "a.jsonl:6", "a.jsonl:8"]


def test_a_missing_field_names_the_fields_once_per_file(tmp_path):
    rows = [{"body": f"row {i}", "id": i} for i in range(5)] + [{"text": "kept"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    docs, problems = _split(list(read_documents([tmp_path])))
    assert [d.text for d in docs] == ["kept"]
    assert len(problems) == 2, problems
    assert problems[0].source.endswith("d.jsonl:1") and "fields: body, id" in problems[0].reason
    assert "4 more lines without field 'text' (lines 2, 3, 4, 5)" in problems[1].reason


def test_parquet_row_numbers_are_global_and_a_wrong_column_is_named_once(tmp_path):
    texts = [f"document {i}" for i in range(600)]
    texts[300] = ""  # in the second 256-row batch
    pq.write_table(pa.table({"text": texts}), tmp_path / "p.parquet", row_group_size=100)
    pq.write_table(pa.table({"body": ["x"] * 300, "id": list(range(300))}), tmp_path / "q.parquet")
    docs, problems = _split(list(read_documents([tmp_path])))
    assert len(docs) == 599 and docs[-1].source.endswith("p.parquet:600")
    assert [p.source.rsplit("/", 1)[-1] for p in problems] == ["p.parquet:301", "q.parquet"]
    assert "columns: body, id" in problems[1].reason


def test_utf16_files_get_a_conversion_hint(tmp_path):
    (tmp_path / "bom.txt").write_bytes("A UTF-16 document with a BOM.\n".encode("utf-16"))
    (tmp_path / "nobom.txt").write_bytes("No BOM here, little endian.\n".encode("utf-16-le"))
    (tmp_path / "rows.jsonl").write_bytes((json.dumps({"text": "x"}) + "\n").encode("utf-16"))
    docs, problems = _split(list(read_documents([tmp_path])))
    assert docs == []
    where = {p.source.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert "UTF-16 byte-order mark" in where["bom.txt"] and "iconv -f utf-16 -t utf-8" in where["bom.txt"]
    assert "UTF-16LE" in where["nobom.txt"] and "iconv -f utf-16le" in where["nobom.txt"]
    assert "must be UTF-8" in where["rows.jsonl"] and "iconv -f utf-16" in where["rows.jsonl"]
