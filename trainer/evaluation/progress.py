"""Progress over all probes of an evaluation: a bar on a terminal, log lines with an ETA otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("trainer.evaluation")


def _reaches_a_handler() -> bool:
    """True when an INFO line of this logger would reach some handler."""
    logger: logging.Logger | None = log
    while logger is not None:
        if any(h.level <= logging.INFO for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def _ensure_visible() -> None:
    """Make the INFO progress lines visible, once.

    A plain CLI run configures no logging and many apps (Prefect's console included) leave the root
    at WARNING: this logger is set to INFO, and when no handler would print INFO a stderr handler
    is added to it.
    """
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    if _reaches_a_handler():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Counts probes done out of ``total`` across every model.

    On a terminal a tqdm bar shows it; otherwise (CI, Prefect, ``make demo > log``) an INFO line
    ``evaluate: 40/120 probes (33%), 1m20s elapsed, ETA 2m40s [base]`` goes to the log at most every
    ``every_s`` seconds, and always for the first and the last batch.
    """

    def __init__(self, total: int, every_s: float = 15.0, tty: bool | None = None) -> None:
        self.total, self.done, self.every_s = total, 0, every_s
        self.start = self.last = time.monotonic()
        self.label = ""
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.bar = None
        if not self.tty:
            _ensure_visible()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="evaluate", unit="probe")

    def stage(self, label: str) -> None:
        """Name what is being measured now (the model)."""
        self.label = label
        if self.bar is not None:
            self.bar.set_postfix_str(label)

    def advance(self, n: int) -> None:
        """``n`` more probes are done."""
        first = self.done == 0
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if first or self.done >= self.total or now - self.last >= self.every_s:
            self.last = now
            log.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress sentence, with an ETA from the average pace so far."""
        elapsed = (now or time.monotonic()) - self.start
        pct = 100.0 * self.done / max(1, self.total)
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta_s = _clock(eta) if self.done else "?"
        tail = f" [{self.label}]" if self.label else ""
        return (
            f"evaluate: {self.done}/{self.total} probes ({pct:.0f}%), {_clock(elapsed)} elapsed, "
            f"ETA {eta_s}{tail}"
        )

    def close(self) -> None:
        """Finish the bar (log mode needs nothing)."""
        if self.bar is not None:
            self.bar.close()
