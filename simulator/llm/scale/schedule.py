"""The op slots of a synthetic job: the trace's own, or a Megatron 1F1B pipeline of another shape.

A synthetic stage takes its ops from a stage of the trace: the first from the first, the last from the
last, the middle ones from the trace's middle stages in turn (from its first or last stage where it
has none). Every synthetic slot names the trace slot it is drawn like (``source``): the same op type
on that stage, micro-batch ``k`` like the trace's micro-batch ``min(k, M - 1)``.

The 1F1B order on stage ``s`` of ``P`` with ``M`` micro-batches: ``min(P - s - 1, M)`` warm-up
forwards, then a forward and a backward in turn, then the remaining backwards; each forward is
preceded by its recv (not on the first stage) and followed by its send (not on the last), each
backward likewise from the other side. The ops before a stage's first compute (the params
all-gather) open the step; its other non-pipeline ops (gc, the gradient collectives, clipping, the
optimizer) close it in the trace's order; the embedding all-reduce only on the first and last stage.

References:
    Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
    Megatron-LM", SC 2021, section 2.2.1 (the 1F1B schedule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...io.errors import InputError
from ..trace import COMPUTE, P2P

COLUMNS = ["stage", "optype", "seq_id", "mc", "gmc", "mb_id"]


def source_stage(stage: int, pp: int, trace_pp: int) -> int:
    """The trace stage that synthetic ``stage`` of ``pp`` takes its ops from."""
    if stage == 0:
        return 0
    if stage == pp - 1:
        return trace_pp - 1
    if trace_pp > 2:
        return 1 + (stage - 1) % (trace_pp - 2)
    return 0 if stage < pp / 2 else trace_pp - 1


def one_f_one_b(stage: int, pp: int, microbatches: int) -> list[tuple[str, int]]:
    """The compute order of ``stage``: ``[("forward" | "backward", micro-batch), ...]``."""
    warm = min(pp - stage - 1, microbatches)
    order = [("forward", k) for k in range(warm)]
    for k in range(microbatches - warm):
        order += [("forward", warm + k), ("backward", k)]
    return order + [("backward", k) for k in range(microbatches - warm, microbatches)]


def megatron(slots: pd.DataFrame, trace_pp: int, pp: int, microbatches: int, path) -> tuple[pd.DataFrame, np.ndarray]:
    """The slots of a ``pp``-stage pipeline of ``microbatches`` micro-batches laid out like ``slots``
    (a Megatron trace's), and each one's source slot in ``slots``."""
    rows, source = [], []
    lookup = {(r.stage, r.optype, r.seq_id): i for i, r in enumerate(slots.itertuples(index=False))}
    counts = slots.groupby(["stage", "optype"]).size().to_dict()

    def like(stage: int, optype: str, k: int) -> int:
        stages = [stage] + [s for s in range(trace_pp) if s != stage]  # the op type from another stage if need be
        for s in stages:
            if (s, optype) in counts:
                return lookup[(s, optype, min(k, counts[(s, optype)] - 1))]
        raise InputError(f"{path}: the trace has no {optype} ops to lay out a {pp}-stage pipeline with")

    def add(stage: int, optype: str, k: int, src: int) -> None:
        mb = k if optype in COMPUTE else -1
        rows.append((stage, optype, k, 0 if optype in COMPUTE else -1, 1 if optype in COMPUTE else -1, mb))
        source.append(src)

    for stage in range(pp):
        home = source_stage(stage, pp, trace_pp)
        own = slots[slots.stage == home]
        computes = own.index[own.optype.isin(COMPUTE)]
        if len(computes) == 0:
            raise InputError(f"{path}: stage {home} has no forward or backward compute")
        others = own[~own.optype.isin((*COMPUTE, *P2P))]
        if 0 < stage < pp - 1:
            others = others[others.optype != "embedding-grads-all-reduce"]
        head, tail = others[others.index < computes[0]], others[others.index > computes[0]]
        for i, row in head.iterrows():
            add(stage, row.optype, row.seq_id, i)
        for kind, k in one_f_one_b(stage, pp, microbatches):
            first, last = (stage == 0, stage == pp - 1) if kind == "forward" else (stage == pp - 1, stage == 0)
            if not first:
                add(stage, f"{kind}-recv", k, like(home, f"{kind}-recv", k))
            add(stage, f"{kind}-compute", k, like(home, f"{kind}-compute", k))
            if not last:
                add(stage, f"{kind}-send", k, like(home, f"{kind}-send", k))
        for i, row in tail.iterrows():
            add(stage, row.optype, row.seq_id, i)
    return pd.DataFrame(rows, columns=COLUMNS), np.asarray(source, dtype=np.int64)


def microbatches_of(slots: pd.DataFrame) -> int:
    """The trace's micro-batches per step: forward computes on its first stage."""
    first = slots[slots.stage == slots.stage.min()]
    return int((first.optype == "forward-compute").sum())
