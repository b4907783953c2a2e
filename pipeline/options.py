"""Command-line values: parsed and checked, with a one-line usage error naming the option and the fix."""

from __future__ import annotations


def int_list(value: str | None, option: str) -> list[int]:
    """Parse ``"512,1024,2k"`` (``k`` = 1024); a bad item is a one-line usage error naming the option."""
    out = []
    for item in (value or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            out.append(int(float(item[:-1]) * 1024) if item.endswith("k") else int(item))
        except ValueError:
            usage_error(option, value, f"comma-separated integers such as 512,1024,2k; {item!r} is not one")
    return out


def float_list(value: str | None, option: str) -> list[float]:
    """Parse ``"0,50,100"``; a bad item is a one-line usage error naming the option."""
    out = []
    for item in (value or "").split(","):
        if item.strip():
            try:
                out.append(float(item))
            except ValueError:
                usage_error(
                    option, value, f"comma-separated numbers such as 0,50,100; {item.strip()!r} is not one"
                )
    return out


def choice_list(value: str | None, option: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """Parse ``"a,b"`` where every item must be one of ``allowed``."""
    import difflib

    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    for item in items:
        if item not in allowed:
            close = difflib.get_close_matches(item, list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            usage_error(option, value, f"items from {', '.join(allowed)} ({hint}{item!r} is not one)")
    return items


def choice(value: str, option: str, allowed: tuple[str, ...] | list[str]) -> str:
    """One value that must be one of ``allowed``."""
    return (
        choice_list(value, option, allowed)[0] if value else usage_error(option, value, "a value is needed")
    )


def usage_error(option: str, value, fix: str):
    """Raise the CLI's usage error for ``option`` (one line, exit code 2)."""
    import typer

    got = "missing" if value is None else f"got {value!r}"
    raise typer.BadParameter(f"{got}; expected {fix}", param_hint=f"'{option}'")


def cron_expr(value: str, option: str) -> str:
    """A five-field cron expression (checked with croniter when it is installed)."""
    fields = value.split()
    if len(fields) != 5:
        usage_error(option, value, 'five fields "minute hour day month weekday", e.g. "0 3 * * *"')
    try:
        from croniter import croniter
    except ImportError:
        return value
    if not croniter.is_valid(value):
        usage_error(option, value, 'a valid cron expression, e.g. "0 3 * * *"')
    return value
