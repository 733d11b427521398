"""Progress reporting: a tqdm bar on stderr for long runs, or nothing."""

from __future__ import annotations

import sys


class NullProgress:
    """The default: reports nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


NULL_PROGRESS = NullProgress()


def progress_bar(total: int, *, desc: str, quiet: bool = False):
    """A bar that appears only after 2 s, only on a terminal, and never with ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return NullProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="update", delay=2.0, file=sys.stderr, mininterval=0.2)
