"""``stragglersim scale``: fit a trace, replay synthetic jobs at every size, write ``scale.json`` and the figure."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ...io.progress import progress_bar
from ...io.results import staged_dir, write_json
from ...io.version import __version__
from ..report import load_inputs
from . import figures, study

MIN_STEPS = 5  # fewer fitted steps: say that step effects and episodes are not estimable


def run_scale(
    trace_path: Path,
    meta_path: Path | None,
    out: Path,
    config: study.ScaleConfig,
    *,
    overwrite: bool = False,
    quiet: bool = False,
) -> str:
    """Run ``config`` on ``trace_path`` (with ``meta_path``, default the meta beside it), write ``out``;
    returns the summary to print."""
    config.validate()
    trace, trace_path, meta_path = load_inputs(trace_path, meta_path, out, overwrite=overwrite, command="scale")
    bar = progress_bar(len(config.dp) * config.draws, desc="synthetic jobs", quiet=quiet, unit="job")
    try:
        result = study.run(trace, config, progress=bar)
    finally:
        bar.close()
    with staged_dir(out, overwrite=overwrite, inputs=[trace_path, meta_path]) as tmp:
        write_json(tmp / "scale.json", {**result, "trace_path": str(trace_path), "version": __version__})
        fit_table(result["fit"]).to_csv(tmp / "fit.csv", index=False)
        figures.plot_scale(result, tmp)
    return "\n".join([*summary_lines(result), f"wrote {out}/scale.json, fit.csv and scale.png (and .pdf)"])


def fit_table(fit: dict):
    """The fit, one row per op type and stage: each part's parameters, intervals and goodness of fit."""
    rows = []
    for k in fit["op_types"]:
        worker = fit["healthy_workers"].get(k["optype"], {})
        row = {"optype": k["optype"], "stage": k["stage"], "slots": k["slots"], "base_median_s": k["base_median_s"]}
        for name, sd, interval, ks in (
            ("worker", worker.get("sigma"), worker.get("sigma_interval"), worker.get("ks_normal")),
            ("step", k["step_sd"], k["step_sd_interval"], k["step_ks_normal"]),
            ("step_worker", k["step_worker_sd"], k["step_worker_sd_interval"], k["step_worker_ks_normal"]),
        ):
            lo, hi = interval or (None, None)
            row |= {
                f"{name}_sd": sd,
                f"{name}_sd_lo": lo,
                f"{name}_sd_hi": hi,
                f"{name}_ks_p": (ks or {}).get("p_value"),
            }
        lo, hi = k["episode_start_interval"]
        row |= {"episodes": k["episodes"], "episode_start": k["episode_start"], "episode_start_lo": lo}
        row |= {"episode_start_hi": hi, "episode_length_steps": k["episode_length_steps"]}
        row |= {"episode_factor_median": k["episode_factor_median"], "noise": k["noise"]["family"]}
        row |= {"noise_ks": k["noise"].get("ks"), "noise_sd": k["noise_sd"]}
        rows.append(row)
    return pd.DataFrame(rows)


def summary_lines(r: dict) -> list[str]:
    """The findings: the fit in two lines, then a row per size."""
    m, fit, meta = r["measured"], r["fit"], r["meta"]
    layout = f"DP {meta['dp_size']} x PP {meta['pp_size']} x TP {meta['tp_size']}"
    layout += f" x CP {meta['dsp_size']}" if meta["dsp_size"] > 1 else ""
    lines = [
        f"{r['trace']}: {layout} ({m['gpus']} GPUs): measured S {m['slowdown']:.2f}, mean step time "
        f"{m['step_time']:.3g} s",
        f"fitted on DP ranks {figures._ranks(fit['dp_ranks'])} ({fit['workers']} workers): {_slow(fit)}; "
        f"{_episodes(fit)}",
    ]
    backups = sorted({b["backups"] for s in r["sizes"] for b in s["backups"] if b["backups"] > 0})
    head = f"{'GPUs':>7} {'DP':>5}  {'S (95% of draws)':<18} {'step s':>7}"
    head += "".join(f" {'B=' + str(b):>5}" for b in backups) + f" {'-' + _share(r) + ' slowest':>13}"
    lines.append(head)
    for s in r["sizes"]:
        sd = s["slowdown"]
        interval = f"{sd['mean']:.2f} ({sd['lo']:.2f}-{sd['hi']:.2f})"
        row = f"{s['gpus']:>7} {s['dp']:>5}  {interval:<18} {s['step_time']['mean']:>#7.3g}"
        by_b = {b["backups"]: b["slowdown"]["mean"] for b in s["backups"]}
        row += "".join(f" {_num(by_b.get(b)):>5}" for b in backups)
        lines.append(row + f" {s['drop_slowest']['slowdown']['mean']:>13.2f}")
    if "check" in r:
        c = r["check"]
        verdict = {True: "inside the interval", False: "OUTSIDE the interval"}.get(
            c["inside"], f"too few draws to check (--draws {study.MIN_DRAWS} or more)"
        )
        lines.append(
            f"at the traced size: predicted S {c['predicted_slowdown']:.2f} ({c['interval'][0]:.2f}-"
            f"{c['interval'][1]:.2f}), measured {c['measured_slowdown']:.2f}: {verdict}"
        )
    if not r["backups_apply"]:
        lines.append("note: the trace has no data-parallel gradient collective: backup replicas do not apply")
    if len(fit["dp_ranks"]) == 1:
        lines.append("note: one DP rank fitted: a slow worker cannot be told from its stage's load (fit two or more)")
    if fit["steps"] < MIN_STEPS:
        lines.append(f"note: {fit['steps']} steps fitted: too few to estimate step effects and episodes")
    if (r["pp"], r["microbatches"]) != (meta["pp_size"], r["trace_microbatches"]):
        lines.append(
            f"note: PP {r['pp']} splits the traced model ({meta['pp_size']} stages) over {r['pp']} stages, "
            f"{r['microbatches']} micro-batches of the traced size: the measured S is of another layout"
        )
    return lines


def _slow(fit: dict) -> str:
    slow = fit["slow_workers"]
    lo, hi = fit["slow_share_interval"]
    if not slow:
        return f"no persistently slow worker (share below {hi:.2g} at 95%)"
    factor = max(max(w["factors"].values()) for w in slow)
    return (
        f"{len(slow)} persistently slow worker{'s' if len(slow) > 1 else ''} (up to x{factor:.2f}; "
        f"share {fit['slow_share']:.2g}, 95% {lo:.2g}-{hi:.2g})"
    )


def _episodes(fit: dict) -> str:
    n = sum(k["episodes"] for k in fit["op_types"])
    return f"{n} transient episode{'s' if n != 1 else ''}" if n else "no transient episodes"


def _share(r: dict) -> str:
    return f"{r['sizes'][0]['drop_slowest']['share'] * 100:g}%"


def _num(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"
