"""Contract round trips, golden schemas, validation errors and deterministic IDs."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from pydantic import ValidationError

import data_contracts as dc
from data_contracts import snapshots
from data_contracts.io import read_records, read_table, write_records, write_table


def _doc() -> dc.SourceDocument:
    return dc.SourceDocument.from_text("Hello long world.\n", source="a.txt", format="txt", title="a")


def _chunk() -> dc.Chunk:
    doc = _doc()
    return dc.Chunk(
        chunk_id=dc.Chunk.make_id(doc.doc_id, 0, 5, "cfg"),
        doc_id=doc.doc_id,
        index=0,
        char_start=0,
        char_end=5,
        token_start=0,
        token_end=1,
        token_count=1,
        text="Hello",
        chunker="recursive",
        config_hash="cfg",
        section_path=["Intro", "Sub"],
    )


def _qa() -> dc.QARecord:
    context = "alpha beta gamma"
    return dc.QARecord(
        qa_id="qa-1",
        task_type=dc.TaskType.EXTRACTION,
        question="What follows alpha?",
        answer="beta",
        context=context,
        context_segments=[dc.ContextSegment(doc_id="doc-1", doc_start=0, doc_end=16, context_start=0)],
        evidence=[dc.EvidenceSpan(quote="beta", context_start=6, context_end=10, doc_id="doc-1")],
        evidence_depth_pct=37.5,
        assembly=dc.Assembly.WHOLE_DOCUMENT,
        doc_ids=["doc-1"],
        teacher_backend="none",
        teacher_model="none",
        prompt_version="v1",
        target_tokens=32,
        n_tokens=20,
        answer_tokens=2,
        seed=3,
    )


def _reject() -> dc.RejectedRecord:
    return dc.RejectedRecord(
        reject_id="rej-1",
        stage="synthesis",
        reason=dc.RejectReason.EVIDENCE_NOT_FOUND,
        detail="quote missing",
    )


def _tokenized() -> dc.TokenizedExample:
    return dc.TokenizedExample(
        example_id="ex-1",
        qa_id="qa-1",
        doc_ids=["doc-1"],
        task_type="extraction",
        input_ids=[1, 2, 3],
        loss_weights=[0.0, 1.0, 1.0],
        length=3,
        n_answer_tokens=2,
        bucket=512,
        evidence_depth_pct=37.5,
    )


SAMPLES = [_doc, _chunk, _qa, _reject, _tokenized]


@pytest.mark.parametrize("make", SAMPLES, ids=lambda f: f.__name__.strip("_"))
def test_round_trip_model_table_ipc_model(tmp_path, make):
    record = make()
    model = type(record)
    path = tmp_path / "shard.arrow"
    write_records(path, [record, record], model)
    table = read_table(path)
    assert dc.schema_contract(table.schema) == (model.CONTRACT, model.VERSION)
    assert table.schema.equals(dc.to_arrow_schema(model), check_metadata=True)
    back = list(read_records(path, model))
    assert back == [record, record]


def test_records_are_frozen_and_strict():
    chunk = _chunk()
    with pytest.raises(ValidationError):
        chunk.text = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        dc.Chunk(**{**chunk.model_dump(), "surprise": 1})


def test_manifest_round_trip_json():
    shard = dc.ShardManifest(
        path="len_512/part-00000.arrow",
        contract="tokenized_example",
        contract_version=1,
        rows=2,
        tokens=10,
        min_length=3,
        max_length=7,
        bytes=100,
        sha256="ab" * 32,
        bucket=512,
        config_hash="c",
    )
    m = dc.BuildManifest(
        kind="tokenized",
        lengthwise_version="0.1",
        config_hash="c",
        config_json="{}",
        shards=[shard],
        buckets=[dc.BucketSummary(upper=512, rows=2, tokens=10, shards=1)],
        dropped=[dc.Count(name="over_max_bucket", count=1)],
    )
    assert dc.BuildManifest.model_validate_json(m.model_dump_json()) == m
    assert m.rows == 2 and m.tokens == 10


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x.arrow", "a/../../x.arrow"])
def test_manifest_paths_must_stay_inside_dataset(bad, tmp_path):
    with pytest.raises(ValueError):
        dc.ShardManifest(
            path=bad,
            contract="chunk",
            contract_version=1,
            rows=0,
            tokens=0,
            min_length=0,
            max_length=0,
            bytes=0,
            sha256="",
            config_hash="",
        )
    with pytest.raises(dc.ContractError):
        dc.resolve_in(tmp_path, bad)


@pytest.mark.parametrize("name", sorted(dc.ALL_CONTRACTS))
def test_schema_matches_golden_snapshot(name):
    model = dc.ALL_CONTRACTS[name]
    path = snapshots.snapshot_path(model)
    assert path.exists(), (
        f"no snapshot for {name} v{model.VERSION}: run python -m data_contracts.snapshots --update"
    )
    assert path.read_text() == snapshots.render(model), (
        f"the Arrow schema of {name} changed but its VERSION ({model.VERSION}) did not: bump VERSION and run "
        "python -m data_contracts.snapshots --update"
    )


def test_schema_change_without_version_bump_is_caught():
    class ChunkV1Changed(dc.Chunk):
        extra_field: int = 0

    assert snapshots.render(ChunkV1Changed) != snapshots.snapshot_path(dc.Chunk).read_text()


def test_bad_row_error_names_file_row_and_field(tmp_path):
    good = _chunk().model_dump(mode="json")
    bad = {**good, "char_end": 99}  # text no longer matches the span
    table = pa.Table.from_pylist([good, bad], schema=dc.to_arrow_schema(dc.Chunk))
    path = tmp_path / "chunks.arrow"
    write_table(path, table)
    with pytest.raises(dc.ContractError) as err:
        list(read_records(path, dc.Chunk))
    msg = str(err.value)
    assert str(path) in msg and "row 1" in msg and "field" in msg


def test_old_contract_version_is_refused_with_a_fix(tmp_path):
    schema = dc.to_arrow_schema(dc.Chunk).with_metadata(
        {b"lengthwise.contract": b"chunk", b"lengthwise.version": b"0"}
    )
    path = tmp_path / "old.arrow"
    write_table(path, pa.Table.from_pylist([_chunk().model_dump(mode="json")], schema=schema))
    with pytest.raises(dc.ContractError, match="v0.*rebuild"):
        list(read_records(path, dc.Chunk))


def test_wrong_contract_and_unstamped_files_are_refused(tmp_path):
    path = tmp_path / "qa.arrow"
    write_records(path, [_qa()], dc.QARecord)
    with pytest.raises(dc.ContractError, match="qa_record"):
        list(read_records(path, dc.Chunk))
    plain = tmp_path / "plain.arrow"
    write_table(plain, pa.table({"x": [1]}))
    with pytest.raises(dc.ContractError, match="stamp"):
        list(read_records(plain, dc.Chunk))


def test_corrupt_and_missing_shards_raise_contract_errors(tmp_path):
    path = tmp_path / "c.arrow"
    write_records(path, [_chunk()], dc.Chunk)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(dc.ContractError, match="corrupt"):
        read_table(path)
    with pytest.raises(dc.ContractError, match="missing"):
        read_table(tmp_path / "nope.arrow")


def test_tokenized_table_check_finds_inconsistent_rows(tmp_path):
    row = _tokenized().model_dump(mode="json")
    table = pa.Table.from_pylist(
        [row, {**row, "length": 4, "bucket": 512}], schema=dc.to_arrow_schema(dc.TokenizedExample)
    )
    with pytest.raises(dc.ContractError, match="row 1"):
        dc.check_tokenized_table(table, "t.arrow")


def test_ids_are_deterministic_content_hashes():
    assert _doc().doc_id == _doc().doc_id
    assert dc.make_id("x", "ab", "c") != dc.make_id("x", "a", "bc")
    assert dc.content_hash({"b": 1, "a": 2}) == dc.content_hash({"a": 2, "b": 1})
    assert json.loads(dc.SourceDocument.model_validate_json(_doc().model_dump_json()).model_dump_json())


def test_qa_record_rejects_misplaced_evidence():
    with pytest.raises(ValueError, match="evidence"):
        dc.QARecord(
            **{**_qa().model_dump(), "evidence": [{"quote": "beta", "context_start": 0, "context_end": 4}]}
        )
