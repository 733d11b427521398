"""The figure of ``stragglersim scale``, drawn from its result (``scale.json``); nothing here replays.

Left: the slowdown S against the number of GPUs (log scale), its 95% interval over the draws shaded,
with each mitigation (B backup replicas, the slowest 1% replaced) beside it and the traced job's own
measured S as a star. Right: the mean step time against GPUs, the ideal step time dotted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...plots.figures import _pyplot, save_figure


def plot_scale(result: dict, out: Path) -> list[Path]:
    """Save ``scale.png`` and ``scale.pdf`` in folder ``out``; returns the files."""
    path = Path(out) / "scale"
    save_figure(scale_figure(result), path)
    return [path.with_suffix(".png"), path.with_suffix(".pdf")]


def scale_figure(result: dict):
    plt = _pyplot()
    sizes = sorted(result["sizes"], key=lambda s: s["gpus"])
    gpus = np.array([s["gpus"] for s in sizes], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for ax, key, unit in ((left, "slowdown", "slowdown S"), (right, "step_time", "mean step time (s)")):
        mean = np.array([s[key]["mean"] for s in sizes])
        lo, hi = np.array([s[key]["lo"] for s in sizes]), np.array([s[key]["hi"] for s in sizes])
        if len(sizes) > 1:
            ax.fill_between(gpus, lo, hi, color="C0", alpha=0.2, lw=0, label="95% of draws")
        else:  # one size: the interval as an error bar
            ax.errorbar(gpus, mean, yerr=[mean - lo, hi - mean], fmt="none", ecolor="C0", alpha=0.5, capsize=6,
                        label="95% of draws")  # fmt: skip
        ax.plot(gpus, mean, "o-", color="C0", label="no mitigation (mean)")
        backups = [b["backups"] for b in sizes[-1]["backups"] if b["backups"] > 0] if result["backups_apply"] else []
        for i, b in enumerate(backups):
            rows = [next((r for r in s["backups"] if r["backups"] == b), None) for s in sizes]
            y = np.array([r[key]["mean"] if r else np.nan for r in rows])
            ax.plot(gpus, y, "s--", color=plt.cm.viridis(0.25 + 0.6 * i / max(len(backups) - 1, 1)), ms=4,
                    label=f"B={b} backup replica{'s' if b > 1 else ''}")  # fmt: skip
        drop = np.array([s["drop_slowest"][key]["mean"] for s in sizes])
        share = sizes[-1]["drop_slowest"]["share"]
        ax.plot(gpus, drop, "^:", color="C3", label=f"slowest {share * 100:g}% of workers replaced")
        measured = result["measured"]
        if (result["pp"], result["microbatches"]) == (measured["pp"], result["trace_microbatches"]):
            ax.plot([measured["gpus"]], [measured[key]], "*", color="k", ms=14, label="the traced job, measured")
        if key == "step_time":
            ideal = np.array([s["ideal_step_time"]["mean"] for s in sizes])
            ax.plot(gpus, ideal, ":", color="0.4", label="ideal (no straggling)")
        ax.set_xscale("log")
        ax.set_xlabel("GPUs (DP x PP x TP" + (" x CP)" if result["meta"]["dsp_size"] > 1 else ")"))
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, which="both")
    left.axhline(1.0, color="0.6", lw=0.8)
    left.set_title("slowdown S (mitigations: time to the update over the ideal)", fontsize=10)
    right.set_title("mean step time", fontsize=10)
    right.legend(fontsize=7, loc="best")
    fit = result["fit"]
    fig.suptitle(
        f"{result['trace']}: synthetic jobs at PP {result['pp']}, {result['microbatches']} micro-batch"
        f"{'es' if result['microbatches'] > 1 else ''}, "
        f"{sizes[0]['draws']} draws per size (fitted on DP ranks {_ranks(fit['dp_ranks'])})"
    )
    return fig


def _ranks(ranks: list[int]) -> str:
    """``0-7`` for a run, else ``0,2,5``."""
    if ranks == list(range(ranks[0], ranks[-1] + 1)) and len(ranks) > 2:
        return f"{ranks[0]}-{ranks[-1]}"
    return ",".join(map(str, ranks))
