"""``scale``: a job's slowdown at other sizes, from synthetic jobs drawn from its fitted model.

Per size and draw, the synthetic job is replayed as ``whatif`` replays a trace: no launch delays
(``original``), and ideal (each compute op its type's mean, each communication op its median).
``S = mean step time / mean ideal step time``. ``M_S`` restores the last stage to ideal; ``M_W``
restores the top 3% of workers, ranked by their own time above the ideal replay's (whatif ranks them
by attribution replays, one per DP rank and stage: thousands at this scale). Mitigations, each as S
and step time: ``B`` backup replicas on the data-parallel dimension (``replay(backups=B)``, B = 1 ..
4), and the slowest 1% of workers (rounded up; ranked by the seconds a step their persistent factor
costs them) replaced by healthy ones; their step time is the time to the new parameters (the last
optimizer op's end) and their S its ratio to the ideal replay's, as whatif's backup table (a dropped
replica's own late compute does not hold the update back). The ideal replay gives every compute op
its type's mean over all workers, slow ones included, so a job rid of its slow workers can beat it
(S < 1). Intervals are the 2.5th and 97.5th percentiles over the draws.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ...io import memory
from ...io.errors import InputError
from ...io.progress import NULL_PROGRESS
from .. import model as llm_model
from ..replay import ideal, measured, no_delay, replay
from ..trace import COMMUNICATION, OpTrace
from ..whatif import WORKER_SHARE
from . import fit as scale_fit
from . import synth
from .schedule import microbatches_of

BYTES_PER_OP = 200  # peak memory per op of a synthetic job while it is replayed (measured: about 170)
MIN_DRAWS = 10  # fewer draws give no interval worth checking a measured S against


@dataclass(frozen=True)
class ScaleConfig:
    """One ``scale`` run (saved in scale.json)."""

    dp: tuple[int, ...]  # DP sizes of the synthetic jobs
    pp: int | None = None  # pipeline stages (None: the trace's)
    microbatches: int | None = None  # per step (None: the trace's)
    steps: int = 20  # per synthetic job
    draws: int = 10  # synthetic jobs per size
    seed: int = 0
    backups: int = 4  # backup replicas compared: B = 1 .. backups
    drop_share: float = 0.01  # the slowest workers replaced: this share, rounded up
    fit_ranks: tuple[int, ...] | None = None  # DP ranks fitted (None: all)

    def validate(self) -> None:
        checks = [
            ("dp", self.dp and all(d >= 1 for d in self.dp), "positive DP sizes"),
            ("dp", len(set(self.dp)) == len(self.dp), "DP sizes given once each"),
            ("seed", self.seed >= 0, "at least 0"),
            ("pp", self.pp is None or self.pp >= 1, "at least 1"),
            ("microbatches", self.microbatches is None or self.microbatches >= 1, "at least 1"),
            ("steps", self.steps >= 1, "at least 1"),
            ("draws", self.draws >= 1, "at least 1"),
            ("backups", self.backups >= 0, "at least 0"),
            ("drop_share", 0 <= self.drop_share < 1, "in [0, 1)"),
        ]
        for name, ok, what in checks:
            if not ok:
                value = getattr(self, name)
                shown = ",".join(map(str, value)) if isinstance(value, tuple) else repr(value)
                raise InputError(f"--{name.replace('_', '-')} must be {what} (got {shown})")


def restricted(trace: OpTrace, ranks: tuple[int, ...] | None) -> OpTrace:
    """``trace`` with only the DP ``ranks`` (renumbered 0..len-1)."""
    if ranks is None:
        return trace
    outside = [r for r in ranks if not 0 <= r < trace.meta.dp_size]
    if outside:
        raise InputError(f"--fit-ranks: DP rank {outside[0]} is outside 0..{trace.meta.dp_size - 1}")
    if len(set(ranks)) < len(ranks):
        raise InputError(f"--fit-ranks dp={','.join(map(str, ranks))}: a DP rank given twice")
    keep = list(ranks)
    meta = replace(trace.meta, dp_size=len(keep))
    start, duration = trace.start[:, :, keep], trace.duration[:, :, keep]
    return replace(trace, meta=meta, ranks=trace.ranks[keep], start=start, duration=duration)


def own_times(trace: OpTrace, model: llm_model.Model | None = None) -> np.ndarray:
    """[slot, step, dp] each op's own time: the transfer time of communication, else the duration
    (``model``: the trace's dependency model, if already built)."""
    base, _ = measured(trace, model or llm_model.build(trace))
    comm = trace.slots["optype"].isin(COMMUNICATION).to_numpy()[:, None, None]
    return np.where(comm, base.transfer, base.duration)


def measured_point(trace: OpTrace, model: llm_model.Model | None = None) -> dict:
    """The traced job's own S and mean step time, as ``whatif`` computes them."""
    model = model or llm_model.build(trace)
    original = no_delay(measured(trace, model)[0])
    t_ori = replay(trace, model, original).step_times
    t_ideal = replay(trace, model, ideal(trace, original)).step_times
    return {**_sizes(trace.meta), "slowdown": float(t_ori.mean() / t_ideal.mean()), "step_time": float(t_ori.mean())}


def run(trace: OpTrace, config: ScaleConfig, *, progress=NULL_PROGRESS) -> dict:
    """Fit ``trace`` (its ``config.fit_ranks``), draw and replay synthetic jobs at every size."""
    config.validate()
    model = llm_model.build(trace)
    fitted = restricted(trace, config.fit_ranks)
    job = scale_fit.fit(fitted, own_times(fitted, model if fitted is trace else None))
    lay = synth.layout(job, config.pp, config.microbatches)
    _check_memory(len(lay.slots), config)
    sizes = [_size(job, lay, dp, config, progress) for dp in config.dp]
    point = measured_point(trace, model)
    result = {
        "trace": trace.path.name,
        "meta": trace.meta.as_dict(),
        "config": asdict(config),
        "measured": point,
        "fit": {
            "dp_ranks": list(config.fit_ranks or range(trace.meta.dp_size)),
            "steps": len(trace.steps),
            **job.report,
        },  # fmt: skip
        "pp": lay.pp,
        "microbatches": lay.microbatches,
        "trace_microbatches": microbatches_of(trace.slots),
        "backups_apply": any(g.gradient for g in lay.model.groups),
        "sizes": sizes,
    }
    same = [s for s in sizes if s["dp"] == trace.meta.dp_size]
    if same and (lay.pp, lay.microbatches) == (trace.meta.pp_size, microbatches_of(trace.slots)):
        s = same[0]["slowdown"]
        result["check"] = {
            "measured_slowdown": point["slowdown"],
            "predicted_slowdown": s["mean"],
            "interval": [s["lo"], s["hi"]],
            "inside": bool(s["lo"] <= point["slowdown"] <= s["hi"]) if config.draws >= MIN_DRAWS else None,
            "error": (s["mean"] - point["slowdown"]) / point["slowdown"],
        }
    return result


def _check_memory(n_slots: int, config: ScaleConfig) -> None:
    """Refuse, before drawing, a size whose replays need more memory than the machine has."""
    dp = max(config.dp)
    need = n_slots * config.steps * dp * BYTES_PER_OP + memory.BASE
    available = memory.machine_memory()  # io.memory's at each call: tests replace it
    if need > available:
        raise InputError(
            f"--dp {dp} with --steps {config.steps}: a synthetic job of {n_slots * config.steps * dp:,} ops needs "
            f"about {memory._gb(need)} of memory (this machine has {memory._gb(available)}); give smaller sizes"
        )


def _sizes(meta) -> dict:
    workers = meta.dp_size * meta.pp_size
    return {"dp": meta.dp_size, "pp": meta.pp_size, "workers": workers, "gpus": workers * meta.tp_size * meta.dsp_size}


def _size(job, lay, dp: int, config: ScaleConfig, progress) -> dict:
    rows = []
    for k in range(config.draws):
        rows.append(_draw(job, lay, dp, k, config))
        progress.update(1)
    out = {**_sizes(replace(job.trace.meta, dp_size=dp, pp_size=lay.pp)), "draws": config.draws}
    for name in ("slowdown", "step_time", "ideal_step_time", "M_S", "M_W"):
        out[name] = _summary([r[name] for r in rows])
    out["backups"] = [
        {
            "backups": b,
            "slowdown": _summary([r["backups"][b]["slowdown"] for r in rows]),
            "step_time": _summary([r["backups"][b]["step_time"] for r in rows]),
            "samples_dropped": float(np.mean([r["backups"][b]["dropped"] for r in rows])),
        }
        for b in sorted(rows[0]["backups"])
    ]
    out["drop_slowest"] = {
        "share": config.drop_share,
        "workers": rows[0]["replaced"],
        "slowdown": _summary([r["drop_slowest"]["slowdown"] for r in rows]),
        "step_time": _summary([r["drop_slowest"]["step_time"] for r in rows]),
    }
    return out


def _draw(job, lay, dp: int, k: int, config: ScaleConfig) -> dict:
    rng = np.random.default_rng([config.seed, dp, k])
    job_k = synth.draw(job, lay, dp, config.steps, rng)
    trace, model = job_k.trace, lay.model
    original = job_k.durations
    perfect = ideal(trace, original)
    r_ori, r_ideal = replay(trace, model, original), replay(trace, model, perfect)
    t_ori, t_ideal = r_ori.step_times.mean(), r_ideal.step_times.mean()
    u_ideal = r_ideal.update.mean()  # mitigations: the time to the new parameters, as whatif's backup table
    gap = t_ori - t_ideal
    stage = trace.slots["stage"].to_numpy()

    def explained(mask) -> float:
        t_rem = replay(trace, model, original.restored(perfect, mask)).step_times.mean()
        return float((t_ori - t_rem) / gap) if gap > 0 else float("nan")

    def mitigated(r) -> dict:
        return {"slowdown": r.update.mean() / u_ideal, "step_time": r.update.mean(), "dropped": r.dropped}

    # M_W's workers: the most own time above the ideal replay's (whatif ranks them by attribution replays)
    compute = ~trace.slots["optype"].isin(COMMUNICATION).to_numpy()
    excess = (original.duration[compute] - perfect.duration[compute]).mean(axis=1)  # [slot, dp]
    by_worker = np.stack([excess[stage[compute] == s].sum(axis=0) for s in range(lay.pp)], axis=1)
    top = _slowest(by_worker, math.ceil(by_worker.size * WORKER_SHARE))
    on_top = np.zeros((len(stage), 1, dp), bool)
    for d, s in top:
        on_top[stage == s, 0, d] = True
    backups = {0: mitigated(r_ori)}
    if any(g.gradient for g in model.groups):
        for b in range(1, min(config.backups, dp - 1) + 1):
            backups[b] = mitigated(replay(trace, model, original, backups=b))
    n_drop = math.ceil(job_k.cost.size * config.drop_share)
    dropped = mitigated(replay(trace, model, job_k.replaced(_slowest(job_k.cost, n_drop))))
    return {
        "slowdown": t_ori / t_ideal,
        "step_time": t_ori,
        "ideal_step_time": t_ideal,
        "M_S": explained((stage == lay.pp - 1)[:, None, None]),
        "M_W": explained(on_top),
        "backups": backups,
        "replaced": n_drop,
        "drop_slowest": dropped,
    }


def _slowest(score: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` workers (DP rank, stage) of largest ``score[dp, stage]``; ties to the lower DP rank."""
    order = np.lexsort((np.arange(score.size), -score.ravel()))[:n]
    return [tuple(int(i) for i in np.unravel_index(o, score.shape)) for o in order]


def _summary(values) -> dict:
    v = np.asarray(values, dtype=float)
    lo, hi = np.nanpercentile(v, [2.5, 97.5]) if np.isfinite(v).any() else (math.nan, math.nan)
    return {"mean": float(np.nanmean(v)) if np.isfinite(v).any() else math.nan, "lo": float(lo), "hi": float(hi),
            "draws": [float(x) for x in v]}  # fmt: skip
