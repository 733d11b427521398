"""What-if analysis of a hybrid-parallel job's stragglers, and what backup replicas would buy.

The definitions are Lin et al.'s (OSDI 2025, section 4):
  - the no-delay replay sets every launch delay to 0; the ideal replay gives each compute op its
    type's mean duration and each communication op its type's median (``llm_replay.ideal``);
  - slowdown ``S = mean step time (no delay) / mean step time (ideal)``, and per step;
  - a group of ops (one op type, one DP rank, one stage) is attributed the ``S`` of the ideal
    replay with that group's own durations restored;
  - ``M_S``: restore the last stage to ideal inside the no-delay replay, ``t_rem`` its mean step
    time, ``M_S = (t_ori - t_rem) / (t_ori - t_ideal)``;
  - ``M_W``: score each worker (DP rank, stage) by the smaller of its DP rank's and stage's
    attribution, restore the top 3% of workers (rounded up) to ideal, the same ratio.
And the link to the rest of the tool: the mean step time and the fraction of gradients dropped
with ``B = 0 .. dp_size - 1`` backup replicas on the data-parallel dimension
(``llm_replay.replay(backups=B)``), on the measured and the ideal durations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..io.progress import NULL_PROGRESS
from . import model as llm_model
from .replay import Durations, ideal, measured, no_delay, replay
from .trace import OpTrace

WORKER_SHARE = 0.03  # M_W restores the top 3% of workers
# Pipeline sends and recvs are attributed in pairs: restoring one side alone restores half a transfer.
MERGED = {
    "forward-send": "forward-pp-comm",
    "forward-recv": "forward-pp-comm",
    "backward-send": "backward-pp-comm",
    "backward-recv": "backward-pp-comm",
}


def analyse(trace: OpTrace, *, progress=NULL_PROGRESS) -> tuple[dict, dict]:
    """The what-if results of ``trace`` (the whatif.json fields) and the replays worth drawing
    (``{"original": Replay, "ideal": Replay}``)."""
    model = llm_model.build(trace)
    base, skew = measured(trace, model)
    meta, slots = trace.meta, trace.slots
    optype = slots["optype"].map(lambda o: MERGED.get(o, o)).to_numpy()
    dp_axis = np.arange(meta.dp_size)[None, None, :]
    stage = slots["stage"].to_numpy()
    restored = {  # each part of the ideal replay given back its measured delays, alone
        "optype": {o: _slots(optype == o) for o in dict.fromkeys(optype)},
        "dp": {d: dp_axis == d for d in range(meta.dp_size)},
        "stage": {s: _slots(stage == s) for s in range(meta.pp_size)},
    }
    more_backups = range(1, meta.dp_size)
    # every replay below: measured, no-delay and ideal; each part restored; two explained; two per extra backup
    _expect(progress, 3 + sum(map(len, restored.values())) + 2 + 2 * len(more_backups))
    run = _Runner(trace, model, progress)
    replayed = run(base)
    observed = meta.schedule == "observed"  # the job's iteration time: each rank's step, not the span over ranks
    t_measured = trace.rank_step_times() if observed else trace.step_times()
    original = no_delay(base)
    perfect = ideal(trace, original)
    drawn = {"original": run.full(original), "ideal": run.full(perfect)}  # also the backup table's B = 0
    t_ori, t_ideal = drawn["original"].step_times, drawn["ideal"].step_times
    slowdown = lambda t: float(t.mean() / t_ideal.mean())  # noqa: E731

    by_optype, by_dp, by_stage = (
        {key: slowdown(run(perfect.restored(original, mask))) for key, mask in restored[part].items()}
        for part in ("optype", "dp", "stage")
    )
    score = np.minimum.outer(np.array(list(by_dp.values())), np.array(list(by_stage.values())))

    def explained(mask) -> dict:
        t_rem = run(original.restored(perfect, mask)).mean()
        gap = t_ori.mean() - t_ideal.mean()
        return {"t_rem": float(t_rem), "M": float((t_ori.mean() - t_rem) / gap) if gap > 0 else float("nan")}

    last_stage = explained(_slots(stage == meta.pp_size - 1))
    top = _top_workers(score, trace.ranks)
    on_top = np.zeros((len(slots), 1, meta.dp_size), bool)
    for d, s in top:
        on_top[stage == s, 0, d] = True
    workers = explained(on_top)
    backups = []
    for b in (0, *more_backups):
        m, i = (
            (run.full(original, backups=b), run.full(perfect, backups=b)) if b else (drawn["original"], drawn["ideal"])
        )
        backups.append(
            {
                "backups": b,
                "mean_step_time": float(m.update.mean()),
                "samples_dropped": m.dropped,
                "ideal_mean_step_time": float(i.update.mean()),
                "ideal_samples_dropped": i.dropped,
            }
        )
    error = np.abs(replayed - t_measured) / t_measured
    result = {
        "trace": trace.path.name,
        "meta": meta.as_dict(),
        "dp_size": meta.dp_size,
        "pp_size": meta.pp_size,
        "ops": int(trace.n_ops),
        "steps": [int(s) for s in trace.steps],
        "step_time": {
            "measured": t_measured.tolist(),
            "replayed": replayed.tolist(),
            "no_delay": t_ori.tolist(),
            "ideal": t_ideal.tolist(),
            **({"span": trace.step_times().tolist()} if observed else {}),
        },
        "replay_error": {"max": float(error.max()), "mean": float(error.mean()), **skew},
        "slowdown": slowdown(t_ori),
        "launch_slowdown": float(t_measured.mean() / t_ori.mean()),
        "M_S": last_stage["M"],
        "M_W": workers["M"],
        "t_ori": float(t_ori.mean()),
        "t_ideal": float(t_ideal.mean()),
        "t_rem_last_stage": last_stage["t_rem"],
        "t_rem_top_workers": workers["t_rem"],
        "top_workers": [{"dp_rank": int(d), "stage": int(s), "rank": int(trace.ranks[d, s])} for d, s in top],
        "by_optype": dict(sorted(by_optype.items(), key=lambda kv: -kv[1])),
        "by_dp_rank": {str(k): v for k, v in by_dp.items()},
        "by_stage": {str(k): v for k, v in by_stage.items()},
        "worker_score": score.tolist(),
        "per_step": {str(int(s)): float(a / b) for s, a, b in zip(trace.steps, t_ori, t_ideal, strict=True)},
        "backups": backups,
        "backups_apply": any(g.gradient for g in model.groups),
        "replays": run.count,
    }
    return result, drawn


def replica_times(replay, trace: OpTrace) -> np.ndarray:
    """[step, dp_rank] seconds from the step's start until the replica's gradients are ready: the
    latest start of its first gradient collective over its stages (the optimizer's where none; the
    latest end of its ops where the trace has neither) in ``replay`` (the no-delay replay of the
    measured durations: the recorded starts include waiting for other replicas)."""
    slots = trace.slots
    first = slots[slots.optype.isin(llm_model.GRADIENT_COLLECTIVES)].groupby("stage").head(1).index.to_numpy()
    if len(first) == 0:
        first = slots[slots.optype == "optimizer"].index.to_numpy()
    if len(first) == 0:
        return replay.end.max(axis=0)
    return replay.start[first].max(axis=0)


def op_table(trace: OpTrace, replay) -> pd.DataFrame:
    """One row per op of a replay: ``dp_rank, stage, step, optype, seq_id, start, end`` (seconds)."""
    n_slots, n_steps, dp = replay.start.shape
    slot, step, rank = (a.ravel() for a in np.indices((n_slots, n_steps, dp)))
    slots = trace.slots
    return pd.DataFrame(
        {
            "dp_rank": rank,
            "stage": slots["stage"].to_numpy()[slot],
            "step": trace.steps[step],
            "optype": slots["optype"].to_numpy()[slot],
            "seq_id": slots["seq_id"].to_numpy()[slot],
            "start": replay.start.ravel(),
            "end": replay.end.ravel(),
        }
    )


def _expect(progress, replays: int) -> None:
    """Add ``replays`` to a progress bar's total (one that has a total), as ``analyse`` learns its plan."""
    if getattr(progress, "total", None) is not None:
        progress.total += replays  # tqdm shows it at its next update


def _slots(mask: np.ndarray) -> np.ndarray:
    return mask[:, None, None]


def _top_workers(score: np.ndarray, ranks: np.ndarray) -> list[tuple[int, int]]:
    """The top 3% of workers by score (rounded up); ties go to the lower recorded rank."""
    n = math.ceil(score.size * WORKER_SHARE)
    cells = sorted(np.ndindex(score.shape), key=lambda c: (-score[c], ranks[c]))
    return [(int(d), int(s)) for d, s in cells[:n]]


class _Runner:
    """Replays with a progress tick each; ``run(d)`` gives step times, ``run.full(d)`` the replay."""

    def __init__(self, trace: OpTrace, model, progress):
        self.trace, self.model, self.progress, self.count = trace, model, progress, 0

    def full(self, durations: Durations, backups: int = 0):
        self.count += 1
        self.progress.update(1)
        return replay(self.trace, self.model, durations, backups=backups)

    def __call__(self, durations: Durations) -> np.ndarray:
        return self.full(durations).step_times
