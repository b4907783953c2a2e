"""RULER-compatible probe tasks, RULER's metrics and its summary format.

Task names and scoring follow NVIDIA/RULER (``scripts/eval/synthetic/constants.py``): every
synthetic task is scored with ``string_match_all`` (share of the references found in the reply,
case-insensitive substring), QA with ``string_match_part`` (1 if any reference is found). Prompts
keep RULER's wording; haystacks are real corpus text (RULER's "essay" haystack), lengths are
measured in the evaluated model's tokens with its chat template.

* ``passkey``: one 5-digit key in the text (LongLoRA's passkey; RULER's niah_single shape).
* ``niah_multikey``: 4 keys with one number each, one queried (RULER ``niah_multikey_1``).
* ``niah_multivalue``: one key with 4 numbers, all asked for (``niah_multivalue``).
* ``niah_multiquery``: 4 keys with one number each, all 4 asked for (``niah_multiquery``).
* ``vt``: one chain of 4 hops of variable assignments (``vt``, ``num_chains=1, num_hops=4``).
* ``cwe``: the 10 most common words of a numbered word list (``cwe``; RULER's < 4K setting of 6
  vs 1 repetitions, one worked example first).
* ``qa``: the held-out split's QA records (``qa_1``/``qa_2`` shape, scored with string_match_part).
* ``kv_retrieval`` (not in RULER; lost-in-the-middle): one 32-hex value from a JSON object of pairs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from data_contracts import SourceDocument, TaskType
from pipeline.chat import ChatFormatter
from pipeline.synthesis import teacher_free as tf

METRICS = {"string_match_all", "string_match_part"}
TASK_METRIC = {
    "passkey": "string_match_all",
    "niah_multikey": "string_match_all",
    "niah_multivalue": "string_match_all",
    "niah_multiquery": "string_match_all",
    "vt": "string_match_all",
    "cwe": "string_match_all",
    "qa": "string_match_part",
    "kv_retrieval": "string_match_all",  # not a RULER task: lost-in-the-middle's JSON key-value retrieval
}
ALIASES = {"needle_multikey": "niah_multikey", "variable_tracking": "vt", "common_words": "cwe"}
RULER_TASKS = tuple(TASK_METRIC)
_CONTROL = re.compile(r"[\x00-\x1f]")


def task_name(name: str) -> str:
    """The canonical task name (``needle_multikey`` -> ``niah_multikey``); a clear error otherwise."""
    canon = ALIASES.get(name, name)
    if canon not in TASK_METRIC:
        raise ValueError(f"unknown probe task {name!r}; choose from {', '.join(RULER_TASKS)}")
    return canon


def postprocess(reply: str) -> str:
    """RULER's prediction clean-up: control characters become newlines, ends stripped."""
    return _CONTROL.sub("\n", reply.strip()).strip()


def string_match_all(pred: str, refs: Sequence[str]) -> float:
    """Share of references contained in the reply (case-insensitive), RULER's synthetic-task metric."""
    return sum(r.lower() in pred.lower() for r in refs) / len(refs)


def string_match_part(pred: str, refs: Sequence[str]) -> float:
    """1.0 when any reference is contained in the reply (case-insensitive), RULER's QA metric."""
    return max(float(r.lower() in pred.lower()) for r in refs)


def ruler_score(task: str, pred: str, refs: Sequence[str]) -> float:
    """The RULER metric of ``task`` for one reply, in [0, 1]."""
    fn = string_match_part if TASK_METRIC[task] == "string_match_part" else string_match_all
    return fn(postprocess(pred), refs)


def _whole(ref: str, pred: str) -> bool:
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(ref)}(?![0-9A-Za-z])", pred, re.IGNORECASE) is not None


def strict_correct(task: str, pred: str, refs: Sequence[str]) -> bool:
    """The binary outcome counted in accuracy tables.

    Like RULER's metric, but whole words only (``31337`` is not found in ``313370``) and all
    references needed (any one for ``qa``).
    """
    pred = postprocess(pred)
    hits = [_whole(r, pred) for r in refs]
    return any(hits) if TASK_METRIC[task] == "string_match_part" else all(hits)


# -- haystack needle tasks -------------------------------------------------------------------------

_NIAH_INTRO = (
    "Some special magic numbers are hidden within the following text. Make sure to memorize them. "
    "I will quiz you about the numbers afterwards."
)


def _keys(rng: random.Random, n: int) -> list[str]:
    return rng.sample([f"{a}-{b}" for a in tf._ADJ for b in tf._NOUN], n)


def _number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + ", and " + items[-1] if len(items) > 1 else items[0]


def niah_multivalue(rng: random.Random, n_values: int = 4) -> tuple[tf.Task, list[str]]:
    """One key with several numbers; all of them are asked for."""
    key = _keys(rng, 1)[0]
    values = [_number(rng) for _ in range(n_values)]
    task = tf.Task(
        intro=_NIAH_INTRO,
        needles=[f"One of the special magic numbers for {key} is: {v}." for v in values],
        question=f"What are all the special magic numbers for {key} mentioned in the provided text?",
        answer=f"The special magic numbers for {key} mentioned in the provided text are: {', '.join(values)}.",
    )
    return task, values


def niah_multiquery(rng: random.Random, n_keys: int = 4) -> tuple[tf.Task, list[str]]:
    """Several keys with one number each; all of them are asked for."""
    keys = _keys(rng, n_keys)
    values = [_number(rng) for _ in keys]
    task = tf.Task(
        intro=_NIAH_INTRO,
        needles=[
            f"One of the special magic numbers for {k} is: {v}." for k, v in zip(keys, values, strict=True)
        ],
        question=f"What are all the special magic numbers for {_listing(keys)} mentioned in the provided text?",
        answer=f"The special magic numbers for {_listing(keys)} mentioned in the provided text are: "
        f"{', '.join(values)}.",
    )
    return task, values


def _digits(text: str) -> list[str]:
    return re.findall(r"\d{5,}", text)


def _passkey(rng: random.Random) -> tuple[tf.Task, list[str]]:
    task = tf.passkey(rng)
    return task, _digits(task.answer)[-1:]


def _multikey(rng: random.Random) -> tuple[tf.Task, list[str]]:
    task = tf.needle_multikey(rng)
    return task, _digits(task.answer)[-1:]


def _vt(rng: random.Random) -> tuple[tf.Task, list[str]]:
    task = tf.variable_tracking(rng)
    names = task.answer.rsplit(":", 1)[1].strip(" .").split(", ")
    return task, names


HAYSTACK_TASKS: dict[str, tuple[TaskType, Callable[[random.Random], tuple[tf.Task, list[str]]]]] = {
    "passkey": (TaskType.PASSKEY, _passkey),
    "niah_multikey": (TaskType.NEEDLE_MULTIKEY, _multikey),
    "niah_multivalue": (TaskType.NEEDLE_MULTIKEY, niah_multivalue),
    "niah_multiquery": (TaskType.NEEDLE_MULTIKEY, niah_multiquery),
    "vt": (TaskType.VARIABLE_TRACKING, _vt),
}


# -- common words extraction -----------------------------------------------------------------------

_CWE_INTRO = (
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often."
)
_CWE_QUESTION = "Question: What are the 10 most common words in the above list?"
_CWE_ANSWER = "Answer: The top 10 words that appear most often in the list are:"


def corpus_words(docs: Sequence[SourceDocument], limit: int = 5000) -> list[str]:
    """Distinct lowercase words (4-12 letters) of the haystack documents, in a stable order."""
    seen: dict[str, None] = {}
    for d in sorted(docs, key=lambda d: d.doc_id):
        for w in re.findall(r"\b[a-z]{4,12}\b", d.text.lower()):
            seen.setdefault(w, None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def _numbered(words: Sequence[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


def _word_list(rng: random.Random, pool: Sequence[str], n_words: int, common: int, uncommon: int):
    picked = rng.sample(list(pool), min(n_words, len(pool)))
    top, rest = picked[:10], picked[10:]
    words = top * common + rest * uncommon
    rng.shuffle(words)
    return words, top


def cwe_example(
    fmt: ChatFormatter, pool: Sequence[str], length: int, rng: random.Random
) -> tuple[str, str, str, list[str]]:
    """``(context, question, answer, refs)`` of a common-words probe that fits ``length`` tokens.

    Like RULER below 4K tokens: the 10 common words appear 6 times, the others once, after one
    worked example (20 words, 3 vs 1 repetitions); the list length is found by bisection. Lengths
    too short for that (RULER starts at 4K) drop the worked example, then use 3 repetitions.
    """
    if len(pool) < 30:
        raise ValueError("common-word extraction needs at least 30 distinct words in the haystack documents")
    ex_words, ex_top = _word_list(rng, pool, 20, 3, 1)
    shot = f"{_CWE_INTRO}\n{_numbered(ex_words)}\n{_CWE_QUESTION} {_CWE_ANSWER} {_numbered(ex_top)}\n"
    seed = rng.random()
    for prefix, common in ((shot, 6), ("", 6), ("", 3)):

        def build(n: int, prefix=prefix, common=common):
            words, top = _word_list(random.Random(seed), pool, n, common, 1)
            return (
                f"{prefix}{_CWE_INTRO}\n{_numbered(words)}",
                _CWE_QUESTION,
                f"{_CWE_ANSWER} {_numbered(top)}",
                top,
            )

        lo, hi, best = 11, min(len(pool), length // 2), None
        while lo <= hi:
            mid = (lo + hi) // 2
            example = build(mid)
            if fmt.count_example(example[0], example[1], example[2]) <= length:
                best, lo = example, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
    raise ValueError(f"target length {length} is too short for cwe")


def summary(results: Sequence, lengths: Sequence[int]) -> dict:
    """RULER-style summary: per model and length, each task's score (0-100, 2 decimals) and nulls.

    The shape mirrors RULER's ``summary.csv`` (Tasks / Score / Nulls per length) plus the average
    over tasks that RULER's tables report, so numbers line up with published tables.
    """
    out: dict = {"metric": {t: TASK_METRIC[t] for t in RULER_TASKS}, "models": {}}
    for r in results:
        per_len: dict[str, dict] = {}
        for length in lengths:
            rows = [p for p in r.probes if p["length"] == length]
            tasks: dict[str, dict] = {}
            for task in dict.fromkeys(p["task"] for p in rows):
                scores = [p["ruler_score"] for p in rows if p["task"] == task]
                nulls = sum(not p["reply"] for p in rows if p["task"] == task)
                tasks[task] = {
                    "score": round(100 * sum(scores) / len(scores), 2),
                    "nulls": f"{nulls}/{len(scores)}",
                    "n": len(scores),
                }
            if tasks:
                avg = sum(t["score"] for t in tasks.values()) / len(tasks)
                per_len[str(length)] = {"tasks": tasks, "average": round(avg, 2)}
        out["models"][r.name] = per_len
    return out
