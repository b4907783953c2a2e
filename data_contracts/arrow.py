"""Derive Arrow schemas from contract models and validate Arrow data against them.

The schema is *derived* from the pydantic model (never inferred from the first row) and stamped
with the contract name and version, so every shard says what it is and which code can read it.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from data_contracts._base import Record
from data_contracts.errors import ContractError

META_CONTRACT = b"lengthwise.contract"
META_VERSION = b"lengthwise.version"


@dataclass(frozen=True)
class ArrowType:
    """Annotation marker that pins the Arrow type of a field (e.g. ``int32`` token ids)."""

    type: pa.DataType


Int32 = Annotated[int, ArrowType(pa.int32())]
Float32 = Annotated[float, ArrowType(pa.float32())]

_SCALARS: dict[type, pa.DataType] = {
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bytes: pa.binary(),
}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) != len(get_args(tp)):
            return args[0], True
        raise TypeError(f"unions other than Optional[T] have no Arrow type: {tp}")
    return tp, False


def arrow_type(tp: Any, where: str = "") -> pa.DataType:
    """Map a Python/pydantic annotation to an Arrow type; unknown types raise ``TypeError``."""
    if get_origin(tp) is Annotated:
        base, *extra = get_args(tp)
        for marker in extra:
            if isinstance(marker, ArrowType):
                return marker.type
        return arrow_type(base, where)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return pa.string()
    if get_origin(tp) is Literal:
        return arrow_type(type(get_args(tp)[0]), where)
    if get_origin(tp) in (list, typing.List):  # noqa: UP006
        return pa.list_(pa.field("item", arrow_type(get_args(tp)[0], where), nullable=False))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return pa.struct(model_fields(tp))
    raise TypeError(f"no Arrow type for {tp!r} (field {where or '?'})")


def model_fields(model: type[BaseModel]) -> list[pa.Field]:
    """Arrow fields for every field of ``model``, in declaration order."""
    fields = []
    for name, info in model.model_fields.items():
        tp = info.annotation
        if info.metadata:  # Annotated[...] metadata is moved here by pydantic
            tp = Annotated[(tp, *info.metadata)]
        inner, nullable = _unwrap_optional(tp) if get_origin(tp) is not Annotated else (tp, False)
        fields.append(pa.field(name, arrow_type(inner, f"{model.__name__}.{name}"), nullable=nullable))
    return fields


def to_arrow_schema(model: type[Record]) -> pa.Schema:
    """Derive the Arrow schema of a contract and stamp it with the contract name and version."""
    if not model.CONTRACT or not model.VERSION:
        raise TypeError(f"{model.__name__} must set CONTRACT and VERSION")
    meta = {META_CONTRACT: model.CONTRACT.encode(), META_VERSION: str(model.VERSION).encode()}
    return pa.schema(model_fields(model), metadata=meta)


def schema_contract(schema: pa.Schema) -> tuple[str, int] | None:
    """Return ``(contract, version)`` stamped in ``schema``, or ``None`` when it has no stamp."""
    meta = schema.metadata or {}
    if META_CONTRACT not in meta:
        return None
    return meta[META_CONTRACT].decode(), int(meta[META_VERSION].decode())


def records_to_table(records: list[Record], model: type[Record]) -> pa.Table:
    """Build an Arrow table with the derived schema from a list of records."""
    schema = to_arrow_schema(model)
    rows = [r.model_dump(mode="json") for r in records]
    return pa.Table.from_pylist(rows, schema=schema)


def check_schema(schema: pa.Schema, model: type[Record], source: str) -> None:
    """Raise ``ContractError`` unless ``schema`` carries ``model``'s contract, version and fields."""
    stamp = schema_contract(schema)
    if stamp is None:
        raise ContractError(
            f"{source}: no lengthwise contract stamp in the schema; "
            f"it was not written by lengthwise (expected {model.CONTRACT} v{model.VERSION})"
        )
    name, version = stamp
    if name != model.CONTRACT:
        raise ContractError(f"{source}: holds '{name}' records, expected '{model.CONTRACT}'")
    if version != model.VERSION:
        raise ContractError(
            f"{source}: written with contract {name} v{version}, this lengthwise reads "
            f"v{model.VERSION}; rebuild it with the current lengthwise (rerun the stage that wrote it)"
        )
    expected = to_arrow_schema(model)
    for field in expected:
        idx = schema.get_field_index(field.name)
        if idx < 0:
            raise ContractError(f"{source}: field '{field.name}' is missing")
        if not schema.field(idx).type.equals(field.type):
            raise ContractError(
                f"{source}: field '{field.name}' has type {schema.field(idx).type}, expected {field.type}"
            )


def table_to_records(table: pa.Table, model: type[Record], source: str, first_row: int = 0):
    """Yield validated records from ``table``; a bad row raises naming the file, row and field."""
    for offset, row in enumerate(table.to_pylist()):
        try:
            yield model.model_validate(row)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ContractError(
                f"{source}: row {first_row + offset}: field '{loc}': {err['msg']}"
                + (f" ({len(exc.errors()) - 1} more errors in this row)" if len(exc.errors()) > 1 else "")
            ) from exc
