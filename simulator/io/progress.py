"""Progress reporting: a tqdm bar on stderr for long runs, or nothing."""

from __future__ import annotations

import sys
import time


class NullProgress:
    """The default: reports nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


NULL_PROGRESS = NullProgress()


def progress_bar(total: int, *, desc: str, quiet: bool = False, unit: str = "update"):
    """A bar that appears only after 2 s, only on a terminal, and never with ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return NullProgress()
    from tqdm import tqdm  # here, not at import: only a terminal shows a bar; the CLI starts without tqdm (15 ms)

    return tqdm(total=total, desc=desc, unit=unit, delay=2.0, file=sys.stderr, mininterval=0.2)


class RunCounter:
    """A live count of a sweep's runs: finished, running and failed.

    On a terminal it is a tqdm bar with the counts beside it; otherwise (a log file, a batch
    job) one line on stderr whenever the counts change, at most every ``every`` seconds, and a
    last line at the end. ``quiet`` shows nothing.
    """

    def __init__(self, *, desc: str = "sweep", quiet: bool = False, every: float = 30.0, stream=None):
        self.desc, self.quiet, self.every = desc, quiet, every
        self.stream = stream or sys.stderr
        self.total = self.finished = self.failed = self.running = 0
        self._bar = None
        self._printed = None  # the counts last printed, and when
        self._last = -float("inf")
        self._started = False

    def start(self, total: int) -> None:
        """Count ``total`` runs to do (the bar appears now, on a terminal)."""
        self.total, self._started = total, True
        if not self.quiet and self.stream.isatty():
            from tqdm import tqdm  # here, not at import: only a terminal shows a bar (15 ms to import)

            self._bar = tqdm(total=total, desc=self.desc, unit="run", file=self.stream, mininterval=0.2)

    def __str__(self) -> str:
        return f"{self.desc}: {self.finished} of {self.total} finished, {self.running} running, {self.failed} failed"

    def update(self, *, finished: int = 0, failed: int = 0, running: int | None = None) -> None:
        """Add newly finished and failed runs; set the number running now (if known)."""
        self.finished += finished
        self.failed += failed
        if running is not None:
            self.running = running
        counts = (self.finished, self.running, self.failed)
        if self._bar is not None:
            self._bar.update(finished + failed)
            self._bar.set_postfix_str(f"running {self.running}, failed {self.failed}", refresh=False)
        elif not self.quiet and counts != self._printed and time.monotonic() - self._last >= self.every:
            self._print(counts)

    def _print(self, counts) -> None:
        print(self, file=self.stream, flush=True)
        self._printed, self._last = counts, time.monotonic()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._started and not self.quiet and self._printed != (self.finished, self.running, self.failed):
            self._print((self.finished, self.running, self.failed))
