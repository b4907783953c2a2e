"""lengthwise data contracts: the records that cross stage boundaries, and their Arrow schemas.

Imports only pydantic and pyarrow, so any tool can read lengthwise shards cheaply.
"""

from data_contracts._base import Record, content_hash, make_id
from data_contracts.arrow import check_schema, records_to_table, schema_contract, to_arrow_schema
from data_contracts.chunks import Chunk
from data_contracts.conversations import Conversation, Role, Turn
from data_contracts.documents import SourceDocument
from data_contracts.errors import ContractError
from data_contracts.lm import LMRecord
from data_contracts.manifests import (
    BucketSummary,
    BuildManifest,
    Count,
    MixCount,
    ShardManifest,
    SkippedInput,
    resolve_in,
)
from data_contracts.qa import (
    Assembly,
    ContextSegment,
    EvidenceSpan,
    QARecord,
    RejectedRecord,
    RejectReason,
    TaskType,
)
from data_contracts.tokenized import TokenizedExample, check_tokenized_table

#: Every contract that can be stored as an Arrow shard, by contract name.
SHARD_CONTRACTS: dict[str, type[Record]] = {
    m.CONTRACT: m
    for m in (
        SourceDocument,
        Chunk,
        QARecord,
        RejectedRecord,
        TokenizedExample,
        Conversation,
        LMRecord,
    )
}

#: Every contract with a golden schema snapshot (shard records and manifests).
ALL_CONTRACTS: dict[str, type[Record]] = {
    **SHARD_CONTRACTS,
    ShardManifest.CONTRACT: ShardManifest,
    BuildManifest.CONTRACT: BuildManifest,
}

__all__ = [
    "ALL_CONTRACTS",
    "SHARD_CONTRACTS",
    "Assembly",
    "BucketSummary",
    "BuildManifest",
    "Chunk",
    "ContextSegment",
    "ContractError",
    "Conversation",
    "Count",
    "EvidenceSpan",
    "LMRecord",
    "MixCount",
    "QARecord",
    "Record",
    "RejectReason",
    "RejectedRecord",
    "Role",
    "ShardManifest",
    "SkippedInput",
    "SourceDocument",
    "TaskType",
    "TokenizedExample",
    "Turn",
    "check_schema",
    "check_tokenized_table",
    "content_hash",
    "make_id",
    "records_to_table",
    "resolve_in",
    "schema_contract",
    "to_arrow_schema",
]
