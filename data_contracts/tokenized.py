"""Tokenized training examples: the Arrow-native rows the trainer reads."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from data_contracts._base import Record
from data_contracts.arrow import Float32, Int32
from data_contracts.errors import ContractError


class TokenizedExample(Record):
    """One chat-formatted, tokenized example with a loss weight per token.

    ``loss_weights[i]`` weighs the prediction *of* token ``i`` (the trainer shifts); it is 0 on
    system/context/question tokens, 1 on answer tokens by default. Rows are validated in bulk
    with :func:`check_tokenized_table`, not row by row: these columns are long.
    """

    CONTRACT = "tokenized_example"
    VERSION = 1

    example_id: str
    qa_id: str
    doc_ids: list[str]
    task_type: str
    input_ids: list[Int32]
    loss_weights: list[Float32]
    length: Int32 = Field(ge=1)
    n_answer_tokens: Int32 = Field(ge=0)
    bucket: Int32 = Field(ge=1)
    evidence_depth_pct: Float32

    @model_validator(mode="after")
    def _check(self) -> TokenizedExample:
        if len(self.input_ids) != self.length or len(self.loss_weights) != self.length:
            raise ValueError(
                f"length={self.length} but {len(self.input_ids)} ids and {len(self.loss_weights)} weights"
            )
        if self.length > self.bucket:
            raise ValueError(f"length {self.length} exceeds its bucket {self.bucket}")
        return self


def check_tokenized_table(table: pa.Table, source: str) -> None:
    """Vectorised contract checks of a tokenized shard; raises naming the file and first bad row."""
    n_ids = pc.list_value_length(table["input_ids"])
    n_w = pc.list_value_length(table["loss_weights"])
    length = table["length"].cast(pa.int32())
    checks = {
        "input_ids": pc.equal(n_ids.cast(pa.int32()), length),
        "loss_weights": pc.equal(n_w.cast(pa.int32()), length),
        "bucket": pc.less_equal(length, table["bucket"]),
        "length": pc.greater(length, 0),
    }
    for field, ok in checks.items():
        bad = pc.indices_nonzero(pc.invert(ok.combine_chunks() if hasattr(ok, "combine_chunks") else ok))
        if len(bad):
            row = bad[0].as_py()
            raise ContractError(
                f"{source}: row {row}: field '{field}': inconsistent with length="
                f"{length[row].as_py()} ({len(bad)} bad rows)"
            )
    flat = pc.list_flatten(table["loss_weights"])
    if len(flat) and (pc.min(flat).as_py() < 0 or not pc.all(pc.is_finite(flat)).as_py()):
        raise ContractError(f"{source}: field 'loss_weights': negative or non-finite weights")
