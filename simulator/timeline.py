"""A run's timeline from its result files: Gantt data and Chrome trace JSON (Perfetto opens it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .errors import InputError


def read_run(run: Path) -> tuple[list[dict], list[dict]]:
    """(gradients, updates) rows of a run folder, numbers parsed."""
    try:
        with open(run / "gradients.csv", newline="") as f:
            gradients = list(csv.DictReader(f))
        with open(run / "updates.csv", newline="") as f:
            updates = list(csv.DictReader(f))
    except OSError as err:
        raise InputError(f"{run}: not a run folder ({err.strerror}: {err.filename})") from None
    for g in gradients:
        g["worker"], g["start"], g["end"] = int(g["worker"]), float(g["start"]), float(g["end"])
    for u in updates:
        u["update"], u["time"] = int(u["update"]), float(u["time"])
    return gradients, updates


def chrome_trace(run: Path, out: Path, *, max_updates: int | None = None) -> int:
    """Write the run's computations as Chrome trace events: one track per worker, one complete
    event per computation (named by its fate), instant events at updates. Returns the count."""
    gradients, updates = read_run(run)
    if max_updates is not None and len(updates) > max_updates:
        horizon = updates[max_updates - 1]["time"]
        gradients = [g for g in gradients if g["start"] <= horizon]
        updates = updates[:max_updates]
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
    for u in updates:
        events.append({"ph": "i", "pid": 1, "tid": 0, "s": "p", "name": f"update {u['update']}", "ts": u["time"] * 1e6})
    out.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return len(events)
