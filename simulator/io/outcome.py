"""How a run ended: one value carried on its result, which the CLI maps to an exit status."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    """How a run ended."""

    COMPLETED = "completed"  # every update of --steps
    REACHED_TARGET = "reached target"  # stopped at --target-accuracy / --target-loss (--stop-at-target)
    DIVERGED = "diverged"  # training stopped on a non-finite loss
    STALLED = "stalled"  # nothing could happen any more (e.g. too many workers failed for good)
    TRACE_EXHAUSTED = "trace exhausted"  # a replayed trace was used up (without --steps: its normal end)


def outcome_of(log, summary: dict) -> Outcome:
    """The outcome of a run from its event log and summary."""
    if summary.get("diverged"):
        return Outcome.DIVERGED
    if log.stalled:
        return Outcome.STALLED
    if summary.get("stopped_at_target"):
        return Outcome.REACHED_TARGET
    if log.exhausted:
        return Outcome.TRACE_EXHAUSTED
    return Outcome.COMPLETED
