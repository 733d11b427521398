"""Ground truth for validating ``scale``: a synthetic job drawn from known parameters, as a trace.

The job's no-delay replay gives every op a start and an end; written as an op-level trace they are
what a profiler would have recorded of a job with exactly these durations, so fitting a subset of its
DP ranks and predicting the whole is a test whose answer is known.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..replay import replay
from ..trace import OpTrace
from .fit import JobModel
from .synth import Layout, draw


def ground_truth(job: JobModel, lay: Layout, dp: int, steps: int, share: float, rng: np.random.Generator) -> OpTrace:
    """A ``dp``-rank job drawn from ``job`` on ``lay`` with a share ``share`` of slow workers, as a trace."""
    synthetic = draw(job, lay, dp, steps, rng, share=share)
    frame = synthetic.trace
    replayed = replay(frame, lay.model, synthetic.durations)
    start = replayed.start - replayed.start.min(axis=(0, 2), keepdims=True)
    duration = replayed.end - replayed.start
    return replace(frame, path=frame.path.with_name(f"ground-truth-dp{dp}"), start=start, duration=duration)
