"""Check any lengthwise shard, manifest or dataset folder against its contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data_contracts import (
    SHARD_CONTRACTS,
    BuildManifest,
    ContractError,
    TokenizedExample,
    check_schema,
    check_tokenized_table,
    resolve_in,
    schema_contract,
)
from data_contracts.arrow import table_to_records
from data_contracts.io import read_table, sha256_file

MANIFEST_NAME = "manifest.json"


@dataclass
class ShardReport:
    """What one shard holds."""

    path: str
    contract: str
    version: int
    rows: int
    columns: list[str]


@dataclass
class ValidationReport:
    """The result of :func:`validate_path`; ``lines()`` renders a readable summary."""

    path: str
    manifest: BuildManifest | None = None
    shards: list[ShardReport] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows over all validated shards."""
        return sum(s.rows for s in self.shards)

    def lines(self) -> list[str]:
        """Human-readable summary."""
        out = [f"OK {self.path}"]
        if self.manifest is not None:
            m = self.manifest
            out.append(f"  manifest: kind={m.kind} shards={len(m.shards)} rows={m.rows} tokens={m.tokens}")
            out.append(f"  config_hash={m.config_hash} lengthwise={m.lengthwise_version}")
            for d in m.dropped:
                out.append(f"  dropped {d.name}: {d.count}")
        for s in self.shards:
            out.append(
                f"  {s.path}: {s.contract} v{s.version}, {s.rows} rows, columns {', '.join(s.columns)}"
            )
        return out


def validate_shard(path: str | Path) -> ShardReport:
    """Validate one Arrow shard: contract stamp, schema, and every row."""
    table = read_table(path)
    stamp = schema_contract(table.schema)
    if stamp is None:
        raise ContractError(f"{path}: no lengthwise contract stamp; not a lengthwise shard")
    name, version = stamp
    model = SHARD_CONTRACTS.get(name)
    if model is None:
        raise ContractError(f"{path}: unknown contract '{name}'; known: {', '.join(sorted(SHARD_CONTRACTS))}")
    check_schema(table.schema, model, str(path))
    if model is TokenizedExample:
        check_tokenized_table(table, str(path))
    else:
        for _ in table_to_records(table, model, str(path)):
            pass
    return ShardReport(str(path), name, version, table.num_rows, table.schema.names)


def load_manifest(path: str | Path) -> BuildManifest:
    """Read and validate a ``manifest.json`` (or the one inside a dataset folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise ContractError(f"{path}: manifest is missing; is this a lengthwise output folder?")
    try:
        return BuildManifest.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ContractError(f"{path}: invalid manifest: {exc}") from exc


def validate_manifest(path: str | Path, check_rows: bool = True) -> ValidationReport:
    """Validate a manifest and every shard it lists (existence, sha256, contract, rows)."""
    path = Path(path)
    root = path if path.is_dir() else path.parent
    manifest = load_manifest(path)
    report = ValidationReport(str(path), manifest)
    for entry in manifest.shards:
        shard = resolve_in(root, entry.path)
        if not shard.exists():
            raise ContractError(
                f"{shard}: listed in the manifest but missing; rerun the stage that writes it"
            )
        digest = sha256_file(shard)
        if digest != entry.sha256:
            raise ContractError(
                f"{shard}: sha256 {digest[:12]}... does not match the manifest ({entry.sha256[:12]}...); "
                "the shard was modified or corrupted, rerun the stage to rebuild it"
            )
        if check_rows:
            shard_report = validate_shard(shard)
            if shard_report.rows != entry.rows:
                raise ContractError(f"{shard}: {shard_report.rows} rows, manifest says {entry.rows}")
            report.shards.append(shard_report)
    return report


def validate_path(path: str | Path) -> ValidationReport:
    """Validate a shard file, a manifest file or a dataset folder holding ``manifest.json``."""
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix == ".json":
        return validate_manifest(path)
    report = ValidationReport(str(path))
    report.shards.append(validate_shard(path))
    return report
