"""Evaluation statistics, RULER tasks and metrics, progress lines: no model runs here."""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from pipeline.chat import ChatFormatter
from pipeline.io.readers import read_documents
from trainer.evaluation import ruler
from trainer.evaluation.probes import probe_grid, qa_probes
from trainer.evaluation.progress import Progress
from trainer.evaluation.runner import ModelResult, batches
from trainer.evaluation.stats import Accuracy, compare, overlap, wilson, z_value


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [  # reference values: Newcombe (1998) table I and the closed form at z = 1.959964
        (0, 10, 0.0, 0.2775),
        (1, 10, 0.0179, 0.4042),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
    ],
)
def test_wilson_matches_published_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=6e-4)


def test_wilson_edges_and_levels():
    assert wilson(0, 0) == (0.0, 1.0)
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    narrow, wide = wilson(20, 40, 0.9), wilson(20, 40, 0.99)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_overlap_and_verdicts():
    base, same, far = Accuracy(5, 10), Accuracy(6, 10), Accuracy(50, 50)
    assert overlap(base, same) and compare(same, base) == "not different"
    assert not overlap(base, far)
    assert compare(far, base) == "better" and compare(base, far) == "worse"
    # Touching intervals count as overlapping (conservative).
    a, b = Accuracy(0, 10), Accuracy(1, 10)
    assert overlap(a, b)
    assert str(Accuracy(5, 10)) == "0.50 [0.24, 0.76] n=10"


def test_result_cells_pool_depths_and_tasks():
    r = ModelResult("m")
    r.probes = [
        {"task": "passkey", "length": 512, "depth": d, "correct": ok}
        for d, ok in [(0.0, True), (0.0, False), (50.0, True), (50.0, True)]
    ] + [{"task": "cwe", "length": 512, "depth": None, "correct": False}]
    assert r.cells()[("passkey", 512, 0.0)].k == 1
    assert r.by_length()[("passkey", 512)] == Accuracy(3, 4)
    assert r.pooled_by_length()[512] == Accuracy(3, 5)
    assert list(r.cells())[0] == ("cwe", 512, None)


def test_ruler_metrics_are_rulers():
    # string_match_all: share of references found, case-insensitive substring (as in RULER).
    assert ruler.string_match_all("Numbers: 111, 222", ["111", "222", "333", "444"]) == 0.5
    assert ruler.string_match_all("ABC", ["abc"]) == 1.0
    assert ruler.string_match_part("it is Paris.", ["London", "paris"]) == 1.0
    assert ruler.string_match_part("no", ["yes"]) == 0.0
    assert ruler.ruler_score("passkey", "313370", ["31337"]) == 1.0  # RULER: substring counts
    assert not ruler.strict_correct("passkey", "313370", ["31337"])  # our tables: whole words only
    assert ruler.strict_correct("vt", "ab, CD\x00 ef", ["AB", "cd", "EF"])
    assert not ruler.strict_correct("niah_multivalue", "1111111 2222222", ["1111111", "3333333"])
    assert ruler.strict_correct("qa", "The answer: Paris", ["paris", "Lyon"])
    assert ruler.task_name("needle_multikey") == "niah_multikey"
    with pytest.raises(ValueError, match="unknown probe task"):
        ruler.task_name("fwe")


@pytest.fixture(scope="module")
def every_task(sample_corpus):
    fmt = ChatFormatter()
    docs = list(read_documents([sample_corpus / "kjv-john.txt", sample_corpus / "license-GPL-3.txt"]))
    tasks = ["passkey", "niah_multikey", "niah_multivalue", "niah_multiquery", "vt", "kv_retrieval", "cwe"]
    return fmt, probe_grid(docs, fmt, [512], [50.0], tasks, per_cell=1)


def test_every_ruler_task_generates_a_solvable_probe(every_task):
    fmt, probes = every_task
    assert [p.task for p in probes] == [
        "passkey",
        "niah_multikey",
        "niah_multivalue",
        "niah_multiquery",
        "vt",
        "kv_retrieval",
        "cwe",
    ]
    n_refs = {
        "passkey": 1,
        "niah_multikey": 1,
        "niah_multivalue": 4,
        "niah_multiquery": 4,
        "vt": 5,
        "kv_retrieval": 1,
        "cwe": 10,
    }
    for p in probes:
        assert len(p.refs) == n_refs[p.task], p.task
        assert 512 - 48 <= fmt.count_example(p.context, p.question, p.answer) <= 512, p.task
        assert all(r in p.context for r in p.refs), p.task
        # The reference answer scores perfectly; an empty or partial one does not.
        assert p.score(p.answer) == {"correct": True, "ruler_score": 1.0}, p.task
        assert p.score("I do not know") == {"correct": False, "ruler_score": 0.0}, p.task
    multiquery = probes[3]
    keys = re.findall(r"for ([a-z]+-[a-z]+) is: (\d+)", multiquery.context)
    assert sorted(v for _, v in keys) == sorted(multiquery.refs)
    assert all(k in multiquery.question for k, _ in keys)
    partial = probes[2].score(" ".join(probes[2].refs[:2]))
    assert partial == {"correct": False, "ruler_score": 0.5}


def test_cwe_references_are_the_most_common_words(every_task):
    _, probes = every_task
    cwe = probes[-1]
    listing = cwe.context.rsplit(ruler._CWE_INTRO, 1)[1]
    counts = Counter(re.findall(r"\d+\. ([a-z]+)", listing))
    top = {w for w, _ in counts.most_common(10)}
    assert top == set(cwe.refs) and min(counts[w] for w in top) > max(
        c for w, c in counts.items() if w not in top
    )
    assert cwe.depth is None


def test_qa_probes_and_ruler_summary_shape(every_task):
    from data_contracts import QARecord

    _, probes = every_task
    r = ModelResult("base")
    r.probes = [
        {"task": p.task, "length": 512, "depth": p.depth, "reply": reply, **p.score(reply)}
        for p, reply in zip(probes, [probes[0].answer, "", *["x"] * (len(probes) - 2)], strict=True)
    ]
    out = ruler.summary([r], [512])
    assert set(out["metric"]) == set(ruler.RULER_TASKS) and out["metric"]["qa"] == "string_match_part"
    row = out["models"]["base"]["512"]
    assert row["tasks"]["passkey"] == {"score": 100.0, "nulls": "0/1", "n": 1}
    assert row["tasks"]["niah_multikey"]["nulls"] == "1/1"
    assert row["average"] == pytest.approx(100.0 / len(probes), abs=0.01)
    assert QARecord.model_fields["answer"]  # qa probes are built from records:
    rec = QARecord.model_construct(
        qa_id="q1", target_tokens=1024, evidence_depth_pct=41.0, context="c", question="q?", answer="Paris"
    )
    (qp,) = qa_probes([rec], [0.0, 50.0, 100.0])
    assert (qp.task, qp.length, qp.depth, qp.refs) == ("qa", 1024, 50.0, ("Paris",))


def test_progress_lines_with_eta_when_not_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="trainer.evaluation")
    prog = Progress(10, every_s=0, tty=False)
    prog.stage("base")
    for _ in range(5):
        prog.advance(2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    assert lines[0].startswith("evaluate: 2/10 probes (20%)") and "ETA" in lines[0] and "[base]" in lines[0]
    assert lines[-1].startswith("evaluate: 10/10 probes (100%)") and "ETA 0m00s" in lines[-1]
    caplog.clear()
    quiet = Progress(10, every_s=3600, tty=False)
    for _ in range(5):
        quiet.advance(2)
    assert len(caplog.records) == 2  # the first and the last batch only


def test_batches_hold_equal_lengths():
    lengths = [512, 2040, 505, 2048, 509, 1020, 511, 2030]
    groups = batches(lengths, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        ls = [lengths[i] for i in g]
        assert len(g) <= 3 and max(ls) - min(ls) <= 32
    assert [sorted(lengths[i] for i in g) for g in groups] == [
        [505, 509, 511],
        [512],
        [1020],
        [2030, 2040, 2048],
    ]


def test_lm_eval_backend_is_skipped_with_a_message_when_absent(tmp_path, caplog):
    import importlib.util

    from trainer.evaluation.api import EvalConfig
    from trainer.evaluation.harness import run_lm_eval
    from trainer.evaluation.report import write_report

    if importlib.util.find_spec("lm_eval") is not None:
        pytest.skip("lm-evaluation-harness is installed here")
    cfg = EvalConfig(haystack=["x"], lm_eval_tasks=["hellaswag"])
    info = run_lm_eval("model", [("base", None)], cfg, "cpu")
    assert "pip install 'lm-eval[hf]'" in info["skipped"] and info["tasks"] == ["hellaswag"]
    assert any("lm-evaluation-harness is not installed" in r.getMessage() for r in caplog.records)
    r = ModelResult("base")
    r.probes = [
        {"task": "passkey", "length": 512, "depth": 0.0, "reply": "1", "correct": True, "ruler_score": 1.0}
    ]
    text = write_report([r], tmp_path, {"lm_eval": info}).read_text()
    assert "## lm-evaluation-harness" in text and "Skipped: lm-evaluation-harness is not installed" in text


def test_progress_reaches_stderr_of_a_plain_process():
    import subprocess
    import sys

    code = "from trainer.evaluation.progress import Progress\np = Progress(4, every_s=0)\np.advance(2)\np.advance(2)"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert "evaluate: 2/4 probes (50%)" in err and "evaluate: 4/4 probes (100%)" in err


def test_progress_reaches_stderr_when_root_logging_shows_warnings_only():
    import subprocess
    import sys

    code = (
        "import logging\nlogging.basicConfig(level=logging.WARNING)\n"
        "from trainer.evaluation.progress import Progress\np = Progress(2, every_s=0)\np.advance(2)"
    )
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err.count("evaluate: 2/2 probes (100%)") == 1  # shown, and only once
