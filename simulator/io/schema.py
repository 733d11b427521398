"""The columns of every fixed-layout CSV the tool writes, with units: the one description of them.

A run folder gets the rows of its own files as ``columns.md`` (``results.write_run``); the README's
Outputs table is this table (a test compares them). Times are simulated seconds unless said.
"""

from __future__ import annotations

# file -> column -> (unit, meaning); a unit of "" is a label or an index
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "updates.csv": {
        "update": ("", "update number, from 1 (it produces parameter version `update`)"),
        "time": ("s", "simulated time of the update"),
        "iteration_time": ("s", "time since the previous update (since 0 for the first)"),
        "gradients": ("gradients", "gradients averaged into the update"),
        "workers": ("workers", "distinct workers among them"),
        "repeat_contributions": ("gradients", "gradients beyond a worker's first in this update"),
        "mean_staleness": ("updates", "mean staleness of its gradients"),
        "max_staleness": ("updates", "largest staleness of its gradients"),
    },
    "gradients.csv": {
        "id": ("", "position in the run's gradient log"),
        "worker": ("", "worker, from 0"),
        "index": ("", "the worker's d-th draw of the latency, from 0"),
        "version": ("", "parameter version the computation read"),
        "step": ("", "the step it was computed for (the token's step under tf; else `version`)"),
        "start": ("s", "simulated time the computation started"),
        "end": ("s", "simulated time it finished (or was cancelled)"),
        "fate": ("", "applied, dropped_late, dropped_stale, cancelled, failed or unfinished"),
        "update": ("", "the update it went into (applied only; else empty)"),
        "staleness": ("updates", "PS version at apply or drop minus `version` (else empty)"),
    },
    "metrics.csv": {
        "update": ("", "update after which the model was evaluated"),
        "sim_time": ("s", "simulated time of that evaluation"),
        "train_loss": ("", "mean loss of the examples averaged since the previous evaluation"),
        "test_loss": ("", "loss on the test set"),
        "test_accuracy": ("fraction", "accuracy on the test set, 0-1 (empty for regression)"),
    },
    "training.csv": {
        "update": ("", "update number, from 1"),
        "sim_time": ("s", "simulated time of the update"),
        "samples": ("examples", "examples whose gradients were averaged"),
        "train_loss": ("", "their mean loss at the parameters each gradient read"),
        "stale_cosine": (
            "",
            "cosine of the applied gradient with the same mini-batches' gradients at the parameters it is applied "
            "to: staleness alone, 1 when fresh (--gradient-quality, every --quality-every updates; else empty)",
        ),
        "stale_error": ("", "norm of the difference from those gradients over their norm, 0 when fresh (else empty)"),
        "batch_cosine": (
            "",
            "cosine with a --reference-batch gradient at those parameters: sampling noise and staleness (else empty)",
        ),
        "batch_error": ("", "norm of the difference from that gradient over its norm (else empty)"),
    },
    "trace.csv": {  # written by import and measure; read by replay, fit, validate, trace:/empirical:
        "worker": ("", "worker, from 0"),
        "step": ("", "the worker's step number"),
        "duration": ("s", "wall-clock seconds of the computation"),
        "start": ("s", "when it started, from the trace's first (optional)"),
    },
}


def table(files=None) -> str:
    """The Markdown table of ``files`` (default: all), one row per column."""
    rows = ["| file | column | unit | meaning |", "|---|---|---|---|"]
    for name in files or COLUMNS:
        for column, (unit, meaning) in COLUMNS[name].items():
            rows.append(f"| `{name}` | `{column}` | {unit or '-'} | {meaning} |")
    return "\n".join(rows) + "\n"


def run_folder_note(files) -> str:
    """``columns.md`` of a run folder holding ``files``."""
    head = "# The columns of this run's CSV files\n\nTimes are simulated seconds (s); staleness counts updates.\n\n"
    return head + table([name for name in COLUMNS if name in files])
