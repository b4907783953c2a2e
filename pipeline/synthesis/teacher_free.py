"""Teacher-free long-context tasks: exact answers by construction, at exact lengths, seeded.

* passkey retrieval (LongLoRA/landmark): a 5-digit key hidden in real corpus text;
* multi-key needle in a haystack (RULER ``multikey_1``): 4 "special magic numbers", 1 queried;
* key-value retrieval (lost-in-the-middle): a JSON object of random hex keys and values;
* variable tracking (RULER ``vt``): a chain ``VAR A = 12345``, ``VAR B = VAR A`` ... in the text.

Lengths are measured in the *student's* tokens with its chat template, prompt and answer included;
the haystack is cut at a token boundary so each example lands within a few tokens of its target.
Evidence depths are spread evenly over ``depth_bins`` bins, and land where they are asked for: the
depth of a record is measured in tokens over the whole context (intro and needles included), and
the insertion point is corrected until it is within ``DEPTH_TOLERANCE`` of the requested depth.
"""

from __future__ import annotations

import bisect
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from data_contracts import Assembly, QARecord, SourceDocument, TaskType, content_hash, make_id
from pipeline.chat import ChatFormatter
from pipeline.synthesis.context import ContextBuilder

PROMPT_VERSION = "teacher-free-v2"  # v2: depths aimed in tokens (the records differ from v1's)
TOLERANCE = 16  # tokens: how far below the target an example may land
DEPTH_TOLERANCE = 0.02  # how far (fraction of the context) the gold evidence may land from its depth
_ATTEMPTS = 8  # fills tried to meet the length, then the depth

_ADJ = "amber brave calm dusty eager fuzzy gentle hollow icy jolly keen lucky mellow noble odd proud quiet rusty shy tidy".split()
_NOUN = "anchor badger cactus dragon engine falcon garden harbor island jacket kettle lantern meadow needle orchard parrot quarry river saddle tunnel".split()
_SEP = "\n\n"


@dataclass(frozen=True)
class Task:
    """One example before fitting: the intro, needles to insert, question and answer."""

    intro: str
    needles: list[str]  # inserted into the haystack at increasing depths
    question: str
    answer: str
    gold: int = 0  # index of the needle whose depth is recorded
    ordered: bool = False  # needles must appear in list order (a chain)
    distractors: tuple[int, ...] = ()  # needles that are not evidence for the answer


def passkey(rng: random.Random) -> Task:
    """Passkey retrieval."""
    key = rng.randint(10000, 99999)
    return Task(
        intro="There is an important piece of information hidden inside a lot of irrelevant text. "
        "Find it and memorize it. I will quiz you about it.",
        needles=[f"The pass key is {key}. Remember it. {key} is the pass key."],
        question="What is the pass key?",
        answer=f"The pass key is {key}.",
    )


def needle_multikey(rng: random.Random, n_keys: int = 4) -> Task:
    """Multi-key needle in a haystack: one queried key among distractor keys."""
    keys = rng.sample([f"{a}-{n}" for a in _ADJ for n in _NOUN], n_keys)
    values = [rng.randint(1_000_000, 9_999_999) for _ in keys]
    gold = rng.randrange(n_keys)
    return Task(
        intro="Some special magic numbers are hidden within the following text. Make sure to memorize them. "
        "I will quiz you about the numbers afterwards.",
        needles=[
            f"One of the special magic numbers for {k} is: {v}." for k, v in zip(keys, values, strict=True)
        ],
        question=f"What is the special magic number for {keys[gold]} mentioned in the provided text?",
        answer=f"The special magic number for {keys[gold]} is {values[gold]}.",
        gold=gold,
        distractors=tuple(i for i in range(n_keys) if i != gold),
    )


def variable_tracking(rng: random.Random, hops: int = 4) -> Task:
    """Variable tracking: follow a chain of assignments through the text."""
    names: list[str] = []
    while len(names) < hops + 1:
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
        if name not in names:
            names.append(name)
    value = rng.randint(10000, 99999)
    chain = [f"VAR {names[0]} = {value}."] + [
        f"VAR {b} = VAR {a}." for a, b in zip(names, names[1:], strict=False)
    ]
    return Task(
        intro="Memorize and track the chain(s) of variable assignment hidden in the following text.",
        needles=chain,
        question=f"Find all variables that are assigned the value {value} in the text above.",
        answer=f"The variables assigned the value {value} are: {', '.join(names)}.",
        ordered=True,
    )


def _hex(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(32))


class Haystack:
    """Real corpus text, concatenated from documents in a seeded order."""

    def __init__(self, docs: Sequence[SourceDocument]) -> None:
        if not docs:
            raise ValueError("teacher-free tasks need at least one source document for the haystack")
        self.docs = sorted(docs, key=lambda d: d.doc_id)
        self.total_chars = sum(d.n_chars for d in self.docs)
        self.fingerprint = content_hash([d.doc_id for d in self.docs])

    def build(self, n_chars: int, rng: random.Random) -> ContextBuilder:
        """At least ``n_chars`` of text (or all of it, repeated), starting at a seeded document."""
        ctx = ContextBuilder()
        i = rng.randrange(len(self.docs))
        have = 0
        while have < n_chars:
            doc = self.docs[i % len(self.docs)]
            take = doc.text[: n_chars - have + 2000]
            if have:
                ctx.add(_SEP)
                have += len(_SEP)
            ctx.add(take, doc.doc_id, 0)
            have += len(take)
            i += 1
        return ctx


class TeacherFreeGenerator:
    """Generates teacher-free records at exact student-token lengths.

    Args:
        docs: haystack documents (real corpus text).
        formatter: the student's chat format, used to measure lengths.
        depth_bins: evidence depths are spread evenly over this many bins per (task, length).

    """

    def __init__(
        self, docs: Sequence[SourceDocument], formatter: ChatFormatter, depth_bins: int = 10
    ) -> None:
        self.haystack = Haystack(docs)
        self.fmt = formatter
        self.depth_bins = depth_bins
        sample = self.haystack.docs[0].text[:20000]
        self.chars_per_token = max(1.0, len(sample) / max(1, self.fmt.count(sample)))

    def generate(
        self, tasks: Sequence[TaskType], lengths: Sequence[int], per_cell: int, seed: int = 0
    ) -> Iterator[QARecord]:
        """``per_cell`` records for every (task, length), depths balanced over the bins."""
        for task in tasks:
            for length in lengths:
                bins = list(range(self.depth_bins))
                random.Random(f"{seed}-{task.value}-{length}").shuffle(bins)
                for i in range(per_cell):
                    # The haystack's documents are part of the seed: builds over other documents get
                    # other records (and other IDs) from the same seed.
                    example_seed = int(
                        content_hash(seed, task.value, length, i, self.haystack.fingerprint), 16
                    ) % (2**31)
                    rng = random.Random(example_seed)
                    # Anywhere in the bin but its edges: a depth met within the tolerance stays in its bin.
                    spread = max(0.0, 1.0 - 2 * DEPTH_TOLERANCE * self.depth_bins)
                    depth = (bins[i % len(bins)] + 0.5 + (rng.random() - 0.5) * spread) / self.depth_bins
                    yield self.make(task, length, depth, rng, example_seed)

    def make(self, task: TaskType, length: int, depth: float, rng: random.Random, seed: int) -> QARecord:
        """One record of ``task`` with its gold evidence at relative ``depth`` in the context."""
        if task == TaskType.KV_RETRIEVAL:
            return self._kv(length, depth, rng, seed)
        spec = {
            TaskType.PASSKEY: passkey,
            TaskType.NEEDLE_MULTIKEY: needle_multikey,
            TaskType.VARIABLE_TRACKING: variable_tracking,
        }[task](rng)
        return self.make_from(task, spec, length, depth, rng, seed)

    def make_from(
        self, task: TaskType, spec: Task, length: int, depth: float, rng: random.Random, seed: int
    ) -> QARecord:
        """A record around a ready ``spec`` (evaluation builds RULER's needle variants this way)."""
        overhead = self.fmt.count_example(
            spec.intro + _SEP + _SEP.join(spec.needles), spec.question, spec.answer
        )
        budget = length - overhead
        if budget < 16:
            raise ValueError(
                f"target length {length} is too short for {task.value} (needs > {overhead + 16})"
            )
        aim, best = depth, None
        hay_seed = rng.random()  # one haystack for every attempt: a depth correction keeps the length
        for _ in range(_ATTEMPTS):
            ctx = self._fill(spec, budget, aim, rng, hay_seed)
            n = self.fmt.count_example(ctx.text, spec.question, spec.answer)
            if not length - TOLERANCE <= n <= length:
                budget += length - n - (TOLERANCE // 2 if n < length - TOLERANCE else 0)
                continue
            got = self._depth(ctx.text, self._gold(spec, ctx).context_start)
            if best is None or abs(got - depth) < abs(best[2] - depth):
                best = (ctx, n, got)
            if abs(got - depth) <= DEPTH_TOLERANCE:
                break
            # Intro and needles shift the gold in tokens; move the insertion point by the miss.
            aim = min(1.0, max(0.0, aim + depth - got))
        ctx, n, _ = best or (ctx, n, None)
        return self._record(task, ctx, spec, length, n, depth, seed)

    def _fill(
        self, spec: Task, budget: int, depth: float, rng: random.Random, hay_seed: float
    ) -> ContextBuilder:
        """Haystack of ``budget`` tokens (cut at a token boundary), needles inserted at depths."""
        hay = self.haystack.build(int(budget * self.chars_per_token * 1.5) + 200, random.Random(hay_seed))
        text = hay.text
        enc = self.fmt.hf.backend_tokenizer.encode(text, add_special_tokens=False)
        cut = enc.offsets[min(budget, len(enc.offsets)) - 1][1] if len(enc.offsets) >= budget else len(text)
        ctx = ContextBuilder()
        ctx.add(spec.intro + _SEP)
        pos = 0
        for part in hay.parts:  # copy the haystack up to the cut
            if pos >= cut:
                break
            ctx.add(part.text[: cut - pos], part.doc_id, part.doc_start)
            pos += len(part.text)
        start, body = len(spec.intro + _SEP), cut
        depths = self._needle_depths(spec, depth, rng)
        # Insert from the shallowest needle down, each snapped to a sentence start no earlier than
        # the end of the needle before it: a chain's links can never swap order (VAR B = VAR A
        # always after VAR A), whatever the snapping does.
        floor, shift = start, 0
        for i in sorted(range(len(spec.needles)), key=lambda k: (depths[k], k)):
            at = max(floor, _snap_to_sentence(ctx.text, start + shift + int(depths[i] * body), floor))
            pad = " " if at > start and not ctx.text[at - 1].isspace() else ""
            needle = pad + spec.needles[i] + " "
            ctx.insert(at, needle, evidence=i not in spec.distractors)
            shift += len(needle)
            floor = at + len(needle) if spec.ordered else start
        return ctx

    @staticmethod
    def _needle_depths(spec: Task, depth: float, rng: random.Random) -> list[float]:
        """The gold needle at ``depth``; a chain follows it in order, distractors go anywhere."""
        n = len(spec.needles)
        if spec.ordered:
            return [depth] + sorted(depth + (1 - depth) * rng.random() for _ in range(n - 1))
        others = [rng.random() for _ in range(n - 1)]
        return others[: spec.gold] + [depth] + others[spec.gold :]

    @staticmethod
    def _evidence(ctx: ContextBuilder) -> list:
        """The evidence spans, each trimmed of the whitespace the insertion padded it with."""
        return [
            e.model_copy(
                update={
                    "quote": e.quote.strip(),
                    "context_start": e.context_start + (len(e.quote) - len(e.quote.lstrip())),
                    "context_end": e.context_start + len(e.quote.rstrip()),
                }
            )
            for e in ctx.evidence_spans()
        ]

    def _gold(self, spec: Task, ctx: ContextBuilder, evidence: list | None = None):
        """The evidence whose depth is recorded: the first link of a chain, else the queried needle."""
        evidence = evidence if evidence is not None else self._evidence(ctx)
        return (
            evidence[0] if spec.distractors or spec.ordered else evidence[min(spec.gold, len(evidence) - 1)]
        )

    def _token_ends(self, text: str) -> list[int]:
        """The character end of every token of ``text`` (the student's tokenizer, no specials)."""
        return [
            end for _, end in self.fmt.hf.backend_tokenizer.encode(text, add_special_tokens=False).offsets
        ]

    def _depth(self, text: str, start: int, ends: list[int] | None = None) -> float:
        """Where ``start`` lies in ``text``, as the fraction of its tokens that end before it."""
        ends = self._token_ends(text) if ends is None else ends
        return bisect.bisect_right(ends, start) / max(1, len(ends))

    def _record(
        self, task: TaskType, ctx: ContextBuilder, spec: Task, length: int, n: int, depth: float, seed: int
    ) -> QARecord:
        text = ctx.text
        evidence = self._evidence(ctx)
        depth_pct = 100.0 * self._depth(text, self._gold(spec, ctx, evidence).context_start)
        return QARecord(
            qa_id=make_id("qa", PROMPT_VERSION, task.value, seed, length),
            task_type=task,
            question=spec.question,
            answer=spec.answer,
            context=text,
            context_segments=ctx.segments(),
            evidence=evidence,
            evidence_depth_pct=round(min(100.0, depth_pct), 2),
            assembly=Assembly.HAYSTACK,
            doc_ids=ctx.doc_ids(),
            teacher_backend="none",
            teacher_model="none",
            prompt_version=PROMPT_VERSION,
            target_tokens=length,
            n_tokens=n,
            answer_tokens=self.fmt.count(spec.answer),
            seed=seed,
        )

    def _kv(self, length: int, depth: float, rng: random.Random, seed: int) -> QARecord:
        """Key-value retrieval: the JSON object itself is the haystack; sized by pair count."""
        per_pair = self.fmt.count(json.dumps({_hex(rng): _hex(rng)})) or 40
        n_pairs = max(2, (length - 80) // per_pair)
        pairs = [(_hex(rng), _hex(rng)) for _ in range(n_pairs + 64)]
        question_of = (
            'Extract the value corresponding to the specified key in the JSON object above.\nKey: "{}"'
        )
        for _ in range(16):
            while len(pairs) < n_pairs:
                pairs.append((_hex(rng), _hex(rng)))
            gold = min(n_pairs - 1, int(depth * n_pairs))
            ctx, spec = self._kv_context(pairs[:n_pairs], gold, question_of)
            n = self.fmt.count_example(ctx.text, spec.question, spec.answer)
            if length - per_pair <= n <= length:
                break
            step = (length - n) // per_pair
            n_pairs = max(2, n_pairs + (step if step else (1 if n < length else -1)))
        nearest = self._nearest_pair(ctx.text, depth)
        if nearest != gold:  # the same pairs, another one asked for: the length barely moves
            moved, moved_spec = self._kv_context(pairs[:n_pairs], nearest, question_of)
            moved_n = self.fmt.count_example(moved.text, moved_spec.question, moved_spec.answer)
            if moved_n <= length:  # another key may cost a token more: never past the target
                ctx, spec, n = moved, moved_spec, moved_n
        return self._record(TaskType.KV_RETRIEVAL, ctx, spec, length, n, depth, seed)

    def _nearest_pair(self, text: str, depth: float) -> int:
        """The pair whose line starts nearest ``depth``, measured in tokens of the whole object."""
        ends = self._token_ends(text)
        starts = [m.end() - 1 for m in re.finditer(r'\n  "', text)]
        return min(range(len(starts)), key=lambda k: abs(self._depth(text, starts[k], ends) - depth))

    @staticmethod
    def _kv_context(items: list[tuple[str, str]], gold: int, question_of: str) -> tuple[ContextBuilder, Task]:
        ctx = ContextBuilder()
        ctx.add("JSON data:\n{")
        for i, (k, v) in enumerate(items):
            line = f'"{k}": "{v}"' + ("," if i < len(items) - 1 else "")
            ctx.add("\n  ")
            ctx.add(line, evidence=(i == gold))
        ctx.add("\n}")
        key, value = items[gold]
        return ctx, Task(intro="", needles=[], question=question_of.format(key), answer=value)


def _snap_to_sentence(text: str, at: int, floor: int) -> int:
    """Move an insertion point back to just after the previous sentence end or line break."""
    at = min(at, len(text))
    for i in range(at, max(floor, at - 2000), -1):
        if text[i - 1] == "\n" or (text[i - 1] == " " and text[i - 2] in ".!?"):
            return i
    return at
