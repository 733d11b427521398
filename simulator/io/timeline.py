"""A run's timeline from its result files: a window of updates, Gantt data and Chrome trace JSON
(Perfetto opens it)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from . import strictjson
from .errors import InputError, named


def read_run(run: Path) -> tuple[list[dict], list[dict]]:
    """(gradients, updates) rows of a run folder, numbers parsed.

    Raises:
        InputError: not a run folder, or one written with ``--log-gradients none``.
    """
    if (run / "updates.csv").exists() and not (run / "gradients.csv").exists():
        raise InputError(
            f"{run}: has no gradients.csv (written with {named('log_gradients')} none): no timeline to draw"
        )
    try:
        with open(run / "gradients.csv", newline="") as f:
            gradients = list(csv.DictReader(f))
        with open(run / "updates.csv", newline="") as f:
            updates = list(csv.DictReader(f))
    except OSError as err:
        raise InputError(f"{run}: not a run folder ({err.strerror}: {err.filename})") from None
    for g in gradients:
        g["worker"], g["start"], g["end"] = int(g["worker"]), float(g["start"] or "nan"), float(g["end"] or "nan")
    for u in updates:
        u["update"], u["time"] = int(u["update"]), float(u["time"] or "nan")  # empty: not finite
    if not updates:
        raise InputError(f"{run}: the run applied no update: no timeline to draw")
    return gradients, updates


def parse_window(text: str) -> tuple[int, int]:
    """``--updates K`` (the first K updates) or ``A:B`` (updates A to B inclusive, numbered from 1).

    Raises:
        InputError: anything else, or A > B, or a number below 1.
    """
    first, sep, last = text.partition(":")
    try:
        a, b = (int(first), int(last)) if sep else (1, int(first))
    except ValueError:
        raise InputError(f"--updates {text}: give K (the first K updates) or A:B (updates A to B)") from None
    if a < 1 or b < a:
        raise InputError(f"--updates {text}: need 1 <= A <= B (updates are numbered from 1)")
    return a, b


def default_window(gradients: list[dict], updates: list[dict]) -> tuple[int, int]:
    """A window covering about two computation times: with P workers and g gradients per update a
    computation spans about P / g updates (one for sync, P for async), so 2P / g updates, at least 6."""
    workers = len({g["worker"] for g in gradients}) or 1
    applied = sum(int(u.get("gradients", 1) or 1) for u in updates) / len(updates)
    return 1, max(6, math.ceil(2 * workers / max(applied, 1.0)))


def select(gradients: list[dict], updates: list[dict], first: int, last: int):
    """The computations and updates of updates ``first`` to ``last`` (inclusive; clipped to the run),
    and the time span they cover: from update first - 1 (or 0) to update ``last``.

    Raises:
        InputError: the window starts after the run's last update.
    """
    n = len(updates)
    if first > n:
        raise InputError(f"--updates {first}:{last}: the run has {n} updates")
    last = min(last, n)
    start = updates[first - 2]["time"] if first > 1 else 0.0
    horizon = updates[last - 1]["time"]
    shown = [g for g in gradients if g["start"] <= horizon and (first == 1 or g["end"] > start)]
    return shown, updates[first - 1 : last], (start, horizon)


def chrome_trace(run: Path, out: Path, *, updates: tuple[int, int] | None = None) -> int:
    """Write the run's computations as Chrome trace events: one track per worker, one complete
    event per computation (named by its fate), instant events at updates. ``updates``: (A, B) keeps
    updates A to B inclusive and the computations that overlap them. Returns the count."""
    gradients, ups = read_run(run)
    if updates is not None:
        gradients, ups, _ = select(gradients, ups, *updates)
    events = [
        {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "workers"}},
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "parameter server"}},
    ]
    for w in sorted({g["worker"] for g in gradients}):
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": w, "args": {"name": f"worker {w}"}})
    for g in gradients:
        events.append(
            {
                "ph": "X",
                "pid": 0,
                "tid": g["worker"],
                "name": g["fate"],
                "cat": "computation",
                "ts": g["start"] * 1e6,
                "dur": max(0.0, g["end"] - g["start"]) * 1e6,
                "args": {"index": g["index"], "version": g["version"], "step": g["step"], "update": g["update"]},
            }
        )
    for u in ups:
        events.append({"ph": "i", "pid": 1, "tid": 0, "s": "p", "name": f"update {u['update']}", "ts": u["time"] * 1e6})
    out.write_text(strictjson.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return len(events)
