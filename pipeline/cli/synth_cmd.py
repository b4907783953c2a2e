"""``lengthwise synth``: teacher-free and self-instruct long-QA from chunk folders."""

from __future__ import annotations

from pathlib import Path

import typer


def synth_cmd(
    chunks: list[Path] = typer.Argument(..., help="Chunk folders written by `lengthwise chunk`."),
    teacher: str = typer.Option("local", help="openai | local | none (teacher-free tasks only)"),
    base_url: str = typer.Option(None, help="openai: server root including /v1."),
    model: str = typer.Option(None, help="openai: served model name; local: model folder or hub ID."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the API key."),
    tasks: str = typer.Option("general,summary,multi_hop,extraction", help="Self-instruct task types."),
    teacher_free: str = typer.Option(
        "passkey,needle_multikey,kv_retrieval,variable_tracking",
        help="Teacher-free task types ('' for none).",
    ),
    target_lengths: str = typer.Option("1024,4096", help="Target lengths in student tokens."),
    questions_per_doc: int = typer.Option(4, min=0, help="Teacher calls planned per document."),
    teacher_free_per_length: int = typer.Option(2, min=0, help="Teacher-free records per (task, length)."),
    student: str = typer.Option(None, help="Student tokenizer/model (lengths are measured with it)."),
    evidence_mode: str = typer.Option("auto", help="auto | teacher | anchored"),
    closed_book: str = typer.Option(
        "auto", help="on/off/auto: drop questions the teacher answers without the document (auto: openai)."
    ),
    verify: str = typer.Option("auto", help="on/off/auto: a judge checks answers against the evidence."),
    judge_model: str = typer.Option(
        None, help="openai: judge model on the same server (default: the teacher)."
    ),
    concurrency: int = typer.Option(4, min=1, help="openai: requests in flight."),
    timeout: float = typer.Option(120.0, min=0.001, help="openai: seconds per request."),
    batch_size: int = typer.Option(8, min=1, help="Requests per batch (local: generated together)."),
    cache: Path = typer.Option(None, help="Response cache (SQLite); default in ~/.cache/lengthwise."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("out/qa"), help="Output folder."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the calls and tokens a run would use; call nothing."
    ),
) -> None:
    """Synthesize grounded long-context QA (and teacher-free tasks) at target lengths."""
    from tqdm import tqdm

    from pipeline.config import (
        SELF_INSTRUCT_TASKS,
        TEACHER_FREE_TASKS,
        SynthConfig,
        TeacherConfig,
        choice,
        choice_list,
        int_list,
        make,
    )
    from pipeline.errors import ConfigError
    from pipeline.stages.synth import synthesize_corpus

    teacher = choice(teacher, "--teacher", ("openai", "local", "none"))
    evidence_mode = choice(evidence_mode, "--evidence-mode", ("auto", "teacher", "anchored"))
    if teacher == "openai" and not (base_url and model):
        missing = [
            f"{opt} is needed with --teacher openai ({why})"
            for opt, value, why in (
                ("--base-url", base_url, "the server root with /v1, e.g. http://localhost:8000/v1"),
                ("--model", model, "the name the server serves"),
            )
            if not value
        ]
        raise ConfigError(missing, "synth")
    cfg = make(
        SynthConfig,
        "synth",
        tasks=choice_list(tasks, "--tasks", SELF_INSTRUCT_TASKS),
        teacher_free_tasks=choice_list(teacher_free, "--teacher-free", TEACHER_FREE_TASKS),
        target_lengths=int_list(target_lengths, "--target-lengths"),
        questions_per_doc=questions_per_doc,
        teacher_free_per_length=teacher_free_per_length,
        student_tokenizer=student,
        evidence_mode=evidence_mode,
        closed_book_check=_switch(closed_book),
        verify_answers=_switch(verify),
        seed=seed,
    )
    tcfg = make(
        TeacherConfig,
        "synth",
        kind=teacher,
        model=model,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout_s=timeout,
        batch_size=batch_size,
        judge_model=judge_model,
    )
    if not cfg.target_lengths:
        raise ConfigError(["--target-lengths needs at least one length"], "synth")
    with tqdm(unit="record", desc=f"synth ({teacher})", disable=None) as bar:
        result = synthesize_corpus(
            chunks, out, cfg, tcfg, dry_run=dry_run, cache_path=cache, progress=bar.update
        )
    for line in result.lines():
        typer.echo(line)
    if not dry_run:
        typer.echo(f"wrote {out} (qa + rejects shards, manifest.json)")


def register(app: typer.Typer) -> None:
    """Add ``synth`` to ``app``."""
    app.command("synth")(synth_cmd)


def _switch(value: str) -> bool | str:
    """``on``/``off``/``auto`` (also true/false) as a config value; anything else fails validation."""
    return {"on": True, "true": True, "off": False, "false": False}.get(value.lower(), value)
