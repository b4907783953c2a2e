"""Every command of the README's CLI section, typed as a user types it: the installed `lengthwise`
entry point in a subprocess, on small inputs.

A tiny Llama with its own BPE (not SmolLM2) is the base model of the whole chain; SmolLM2 only
tokenizes one shard folder, which training must then refuse. Session fixtures build each input
once; the tests run in file order and reuse what the earlier ones wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.validate import load_manifest
from tests.servers import prefect_server
from tests.synthesis.fault_server import FaultServer
from tests.trainer.conftest import make_tiny_model

REPO = Path(__file__).resolve().parents[1]
LW = shutil.which("lengthwise") or str(Path(sys.executable).with_name("lengthwise"))


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),  # the entry point runs this checkout's code
            "PREFECT_HOME": tempfile.mkdtemp(prefix="lw-readme-pf-"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "TQDM_DISABLE": "1",
            **extra,
        }
    )
    return env


def lw(*args, ok: bool = True, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [LW, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env or _env(), cwd=REPO
    )
    if ok:
        assert out.returncode == 0, (
            f"lengthwise {' '.join(map(str, args))}\n{out.stdout}\n{out.stderr[-4000:]}"
        )
    return out


@pytest.fixture(scope="module")
def prefect_api():
    """One real Prefect server that build, run and serve all attach to (PREFECT_API_URL), instead of
    each command starting and migrating a temporary server of its own."""
    with prefect_server(_env(), attempts=480) as api:
        yield api


@pytest.fixture(scope="session")
def work(tmp_path_factory, sample_corpus) -> Path:
    """Two short real documents, chat files in four formats (with bad rows), a tiny Llama."""
    root = tmp_path_factory.mktemp("readme")
    docs = root / "docs"
    docs.mkdir()
    for name in ("license-MPL-2.0.txt", "kjv-john.txt"):
        (docs / name).write_text((sample_corpus / name).read_text()[:4000])
    texts = [p.read_text()[:100_000] for p in sorted(sample_corpus.glob("*"))[:6]]
    make_tiny_model(root / "tiny-llama", texts, hidden=32, layers=1, vocab=600, max_pos=2048)
    _chat_files(root / "chat")
    return root


def _chat_files(chat: Path) -> None:
    chat.mkdir()
    turns = [
        ("What does the license cover?", "Source code files."),
        ("Can I modify it?", "Yes, under the same terms."),
    ]
    messages = [
        {
            "messages": [{"role": "system", "content": f"Answer briefly ({i})."}]
            + [
                m
                for q, a in turns
                for m in ({"role": "user", "content": f"{q} {i}"}, {"role": "assistant", "content": a})
            ]
        }
        for i in range(6)
    ]
    lines = [json.dumps(m) for m in messages] + [
        "{not json",
        json.dumps({"messages": [{"role": "bard", "content": "x"}]}),
    ]
    (chat / "messages.jsonl").write_text("\n".join(lines) + "\n")
    sharegpt = [
        {"conversations": [{"from": "human", "value": f"Say hi {i}"}, {"from": "gpt", "value": f"Hi {i}!"}]}
        for i in range(6)
    ]
    (chat / "sharegpt.jsonl").write_text(
        "\n".join(map(json.dumps, sharegpt + [{"conversations": []}])) + "\n"
    )
    alpaca = {
        "instruction": [f"Translate number {i} to words." for i in range(6)],
        "input": ["", "please", "", "", "now", ""],
        "output": ["zero", "one", "two", "three", "four", "five"],
    }
    pq.write_table(pa.table(alpaca), chat / "alpaca.parquet")
    longalign = [
        {"context": "Long text. " * 40, "question": f"What repeats? {i}", "answer": "Long text."}
        for i in range(4)
    ]
    (chat / "longalign.jsonl").write_text("\n".join(map(json.dumps, longalign)) + "\n")


def _train_yaml(work: Path) -> Path:
    path = work / "train.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": str(work / "tiny-llama"),
                "stages": [{"max_length": 256, "steps": 2, "lr": 1e-3}],
                "tokens_per_step": 512,
                "lora": {"r": 4, "alpha": 8},
                "checkpoint_every": 5,
                "isolation_check": False,
            }
        )
    )
    return path


def test_version_assets_and_usage_errors(work):
    assert lw("--version").stdout.startswith("lengthwise ")
    assert "assets ready" in lw("assets").stdout
    lw("config-docs", "--out", work / "config.md")
    assert (work / "config.md").read_text() == (REPO / "docs" / "config.md").read_text()
    for args, option in [
        (("chunk", work / "docs", "--max-tokens", "abc"), "--max-tokens"),
        (("eval", "--lengths", "512,1x"), "--lengths"),
        (("eval", "--tasks", "passkey,qa"), "--tasks"),
        (("synth", work / "docs", "--teacher", "gpt4"), "--teacher"),
        (("shard",), "inputs"),
        (("serve", "x.yaml", "--cron", "daily"), "--cron"),
    ]:
        out = lw(*args, ok=False)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert option in out.stderr and "--help" in out.stderr


def test_chunk_three_methods_and_validate(work):
    tiny = work / "tiny-llama"
    for method in ("recursive", "sliding", "semantic"):
        extra = ["--embedder", "hashing"] if method == "semantic" else []
        out = lw(
            "chunk",
            work / "docs",
            "--method",
            method,
            "--max-tokens",
            128,
            "--tokenizer",
            tiny,
            "--out",
            work / f"chunks-{method}",
            "--format",
            "jsonl",
            *extra,
        )
        assert "wrote" in out.stdout
        assert load_manifest(work / f"chunks-{method}").rows > 4
    assert "OK" in lw("validate", work / "chunks-recursive").stdout


def test_synth_teacher_free_and_dry_runs(work):
    tiny = work / "tiny-llama"
    lw(
        "synth",
        work / "chunks-recursive",
        "--teacher",
        "none",
        "--student",
        tiny,
        "--target-lengths",
        "256,512",
        "--teacher-free",
        "passkey,kv_retrieval",
        "--teacher-free-per-length",
        3,
        "--out",
        work / "qa",
    )
    assert load_manifest(work / "qa").rows == 12
    local = lw(
        "synth",
        work / "chunks-recursive",
        "--teacher",
        "local",
        "--student",
        tiny,
        "--dry-run",
        "--target-lengths",
        "512",
        "--questions-per-doc",
        2,
        "--cache",
        work / "cache.sqlite",
    )
    with FaultServer([]) as server:
        remote = lw(
            "synth",
            work / "chunks-recursive",
            "--teacher",
            "openai",
            "--base-url",
            server.url,
            "--model",
            "teacher",
            "--student",
            tiny,
            "--dry-run",
            "--target-lengths",
            "512",
            "--questions-per-doc",
            2,
            "--cache",
            work / "cache.sqlite",
        )
    assert server.requests == []  # a dry run spends nothing
    for out in (local, remote):
        assert "calls" in out.stdout and "4" in out.stdout, out.stdout
    assert not (work / "out").exists()


def test_shard_our_qa_and_inspect(work):
    out = lw(
        "shard",
        work / "qa",
        "--tokenizer",
        work / "tiny-llama",
        "--buckets",
        "256,512,1k",
        "--heldout",
        0.3,
        "--out",
        work / "shards",
    )
    assert "tokenized" in out.stdout
    assert load_manifest(work / "shards").rows + load_manifest(work / "shards" / "heldout").rows == 12
    assert "task passkey" in lw("inspect", work / "shards").stdout


def test_chat_files_of_every_format_shard_together_and_train(work):
    """The README's two lines: one shard over chat files of all formats, then one train on it."""
    names = ["messages.jsonl", "sharegpt.jsonl", "alpaca.parquet", "longalign.jsonl"]
    out_dir = work / "shards-chat"
    out = lw(
        "shard",
        *(work / "chat" / n for n in names),
        "--tokenizer",
        work / "tiny-llama",
        "--buckets",
        "128,256,512",
        "--out",
        out_dir,
    )
    manifest = load_manifest(out_dir)
    assert manifest.tokenizer_fingerprint
    assert manifest.rows == 6 + 6 + 6 + 4  # every good row of every format, none lost
    for name in ("messages.jsonl", "sharegpt.jsonl"):  # the files with bad rows
        assert f"{name}:7: " in out.stdout  # file and line of the bad row, listed and skipped
        assert f"{name}:7`" in (out_dir / "README.md").read_text()
    texts = _shard_texts(out_dir)
    for marker in ("Can I modify it? 5", "Say hi 5", "Translate number 5", "What repeats? 3"):
        assert any(marker in t for t in texts), marker  # each format's rows made it in
    out = lw(
        "train",
        _train_yaml(work),
        "--set",
        f"data={out_dir}",
        "--set",
        f"output_dir={work / 'train-chat'}",
    )
    assert json.loads(out.stdout[out.stdout.index("{") :])["steps"] == 2
    rows = [json.loads(line) for line in (work / "train-chat" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["lr"] == pytest.approx(1e-3)  # the rate step 1 used, not the next one


def _shard_texts(folder: Path) -> list[str]:
    """Every row of a tokenized folder, decoded with the tiny model's tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder.parent / "tiny-llama")
    texts = []
    for shard in load_manifest(folder).shards:
        with pa.ipc.open_stream(folder / shard.path) as reader:
            table = reader.read_all()
        texts += [tok.decode(ids) for ids in table.column("input_ids").to_pylist()]
    return texts


def _run_yaml(work: Path) -> Path:
    run = work / "run"
    cfg = {
        "model": str(work / "tiny-llama"),
        "build": {
            "name": "readme",
            "output_dir": str(run / "build"),
            "sources": [
                {"path": str(work / "docs")},
                {"path": str(work / "chat" / "sharegpt.jsonl"), "kind": "chat"},
            ],
            "chunker": {"method": "recursive", "max_tokens": 128},
            "synth": {
                "target_lengths": [256, 512],
                "teacher_free_per_length": 2,
                "questions_per_doc": 0,
                "teacher_free_tasks": ["passkey"],
            },
            "teacher": {"kind": "none"},
            "shard": {"bucket_edges": [256, 512], "heldout_fraction": 0.3, "heldout_by": "record"},
        },
        "train": {
            "output_dir": str(run / "train"),
            "stages": [{"max_length": 256, "steps": 2}, {"max_length": 512, "steps": 1}],
            "tokens_per_step": 512,
            "lora": {"r": 4, "alpha": 8},
            "isolation_check": False,
        },
        "eval": {
            "haystack": [str(work / "docs")],
            "lengths": [256],
            "depths": [50],
            "tasks": ["passkey"],
            "max_rows": 2,
            "out": str(run / "eval"),
        },
    }
    path = work / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_one_model_builds_trains_and_evaluates_and_refuses_foreign_shards(work, prefect_api):
    cfg = _run_yaml(work)
    server = _env(PREFECT_API_URL=prefect_api)
    lw("build", cfg, env=server)
    shards = work / "run" / "build" / "shards"
    manifest = load_manifest(shards)
    assert manifest.tokenizer == str(work / "tiny-llama")  # named once, used by the shard stage
    assert {c.name for c in manifest.task_counts} == {"passkey", "chat"}
    summary = json.loads(lw("run", cfg, env=server).stdout)
    assert Path(summary["report"]).exists() and Path(summary["adapter"]).exists()
    # The README's eval line, with the run's config for the rest.
    lw("eval", "--config", cfg, "--adapter", summary["adapter"], "--lengths", "256", "--out", work / "eval2")
    assert (work / "eval2" / "report.md").exists()
    # The README's export lines: the run's model out, loaded by plain transformers; shards as Parquet.
    lw("export", work / "run" / "train", "--merge", "--out", work / "model")
    load = f"from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained({str(work / 'model')!r})"
    loaded = subprocess.run(
        [sys.executable, "-c", load], capture_output=True, text=True, env=_env(), timeout=600
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "rows" in lw("export-shards", shards, "--out", work / "hf").stdout
    assert list((work / "hf").rglob("*.parquet"))
    # The same config on shards tokenized with SmolLM2 stops before training, naming both tokenizers.
    lw("shard", work / "chat" / "sharegpt.jsonl", "--buckets", "256", "--out", work / "shards-smollm2")
    out = lw(
        "train",
        cfg,
        "--set",
        f"data={work / 'shards-smollm2'}",
        "--set",
        f"output_dir={work / 'never'}",
        ok=False,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert (
        "smollm2-135m" in out.stderr and str(work / "tiny-llama") in out.stderr and "Re-shard" in out.stderr
    )
    assert not (work / "never").exists()


def test_serve_registers_the_deployment_and_stops(work, prefect_api):
    proc = subprocess.Popen(
        [LW, "serve", work / "run.yaml", "--cron", "0 3 * * *", "--name", "readme"],
        env=_env(PREFECT_API_URL=prefect_api),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    seen, deadline = [], time.time() + 300
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if "build-dataset/readme" in line or "being served" in line:
                break
        got = httpx.get(f"{prefect_api}/deployments/name/build-dataset/readme", timeout=10)
        assert got.status_code == 200, "".join(seen)[-3000:]
        assert got.json()["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
