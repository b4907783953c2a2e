"""The build flow under a real (test-harness) Prefect server: outputs, caching, artifacts, Dask."""

from __future__ import annotations

import pytest

from pipeline.stages.build import BuildConfig
from pipeline.validate import load_manifest, validate_path
from tests.flows.conftest import build_cfg

pytestmark = pytest.mark.usefixtures("prefect_backend")
LM = {"share": 0.3}  # long-document LM records mixed in (issue 17): mapped like chunking, mixed at shard


def _hashes(folder):
    return [(s.path, s.sha256) for s in load_manifest(folder).shards]


def test_build_writes_valid_shards_skips_bad_files_and_caches(build_sources, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.build import build_dataset, build_with_runner

    cfg = BuildConfig.model_validate({**build_cfg(build_sources, tmp_path / "b"), "lm": LM})
    shards = build_with_runner(cfg)
    report = validate_path(shards)
    assert report.manifest.kind == "tokenized" and report.rows > 0
    kinds = {m.kind for b in report.manifest.buckets for m in b.mix}
    assert kinds == {"qa", "lm"}, kinds  # the LM task ran and the shard task mixed its records in
    skipped = (tmp_path / "b" / "docs" / "skipped.json").read_text()
    assert "broken.txt" in skipped and "empty.md" in skipped
    first = _hashes(shards)
    state = build_dataset(cfg, return_state=True)  # rerun: every batch is found done (its marker matches)
    assert state.is_completed() and _hashes(shards) == first
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"build-counts", "dataset-card"} <= keys


def test_dask_local_cluster_build_equals_threaded_build(build_sources, tmp_path):
    from flows.build import build_with_runner

    threaded = build_with_runner(
        BuildConfig.model_validate({**build_cfg(build_sources, tmp_path / "t"), "lm": LM})
    )
    dask = build_with_runner(
        BuildConfig.model_validate(
            {**build_cfg(build_sources, tmp_path / "d", kind="dask", max_workers=2), "lm": LM}
        )
    )
    assert _hashes(threaded) == _hashes(dask)


def test_config_with_several_mistakes_is_one_error(tmp_path):
    import yaml

    from flows.config import load_build_config
    from pipeline.errors import ConfigError

    bad = {
        "sources": [{"pth": "x"}],
        "chunker": {"method": "magic", "max_tokens": 4},
        "runner": {"kind": "spark"},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_build_config(path)
    msg = str(err.value)
    for where in ("sources.0.pth", "chunker.method", "chunker.max_tokens", "runner.kind"):
        assert where in msg, msg
    assert "did you mean 'path'?" in msg


def test_sources_with_no_document_fail_the_build_once_naming_them(tmp_path, monkeypatch):
    """Every source mistyped: the build stops with one error naming them (no empty dataset, exit 0) and
    does not retry a config mistake. One bad source among good ones is skipped instead (test_chat_import)."""
    from flows.build import build_dataset
    from pipeline.errors import InputError
    from pipeline.stages import build as stages

    reads: list[str] = []
    real = stages.read_documents
    monkeypatch.setattr(
        stages, "read_documents", lambda paths, **kw: (reads.append(str(paths[0])), real(paths, **kw))[1]
    )
    (tmp_path / "empty").mkdir()
    raw = build_cfg(tmp_path / "typo", tmp_path / "b")
    raw["sources"].append({"path": str(tmp_path / "empty")})
    state = build_dataset(BuildConfig.model_validate(raw), return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, InputError)
    msg = str(exc)
    assert "sources[0]" in msg and "sources[1]" in msg and "typo: no such file or folder" in msg, msg
    assert "Fix the source paths" in msg
    assert reads == [str(tmp_path / "typo"), str(tmp_path / "empty")], reads  # read once: no retry
