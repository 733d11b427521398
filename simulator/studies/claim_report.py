"""The report's sections on the paper's two claims, written from the studies' facts: where each claim
holds in this simulation, where it does not, and the numbers with their intervals. A claim is said to
hold in a cell only where the intervals are apart; overlapping intervals are reported as no
difference, whatever the means say."""

from __future__ import annotations

import json
from pathlib import Path

from ..io.results import write_text
from ..latency.traces import shipped_trace
from .claim_plots import map_row
from .claims import _apart

TRACE = shipped_trace("measured-cpu-4x-cnn-digits.csv")
ORDER = ("paper", "staleness-depth", "sync-vs-async", "tradeoff-map")
FIGURES = {
    "paper": (
        "trace-fit",
        "kth-gradient",
        "iteration-time-vs-backups",
        "updates-to-target-vs-n",
        "time-to-target-vs-backups",
        "accuracy-vs-time",
        "staleness",
        "convex-bound",
        "timeline",
    ),
    "staleness-depth": ("staleness-depth",),
    "sync-vs-async": ("sync-vs-async", "sync-vs-async-mechanisms"),
    "tradeoff-map": ("tradeoff-map",),
}


def write_report(out: Path) -> Path:
    """``out/report.md`` from the facts of every study ``out/facts/`` holds, in the order of ``ORDER``."""
    facts = {}
    for study in ORDER:
        path = out / "facts" / f"{study}.json"
        if path.is_file():
            facts[study] = json.loads(path.read_text())
    quick = any(f.get("quick") for f in facts.values())
    lines = ["# stragglersim reproduce" + (" (quick: toy scale, nothing tuned)" if quick else ""), ""]
    writers = {
        "paper": paper_section,
        "staleness-depth": staleness_section,
        "sync-vs-async": sync_vs_async_section,
        "tradeoff-map": tradeoff_map_section,
    }
    for study, f in facts.items():
        lines += writers[study](f)
        lines += [f"Figures: {', '.join(f'`{name}.png`' for name in FIGURES[study])} (described in `README.md`).", ""]
        reused = "" if study == "paper" else " (runs already complete there are reused)"
        lines += [f"_{study}: {f['seconds']:.0f} s for the last call; data under `data/{_data(study)}`{reused}._", ""]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path


def _data(study: str) -> str:
    return "" if study == "paper" else f"{study}/"


def paper_section(facts: dict) -> list[str]:
    """The paper's experiments: the fitted latency, the optimum B, the strategies at 8 workers, the bound."""
    fit, best, compare = facts["fit"], facts["optimum"], facts["compare"]
    total, target, study_target = facts["total"], facts["target"], facts["study_target"]
    lines = [
        "## The paper's experiments",
        "",
        f"Latency model: `{fit['spec']}`, fitted by maximum likelihood to the shipped measured trace "
        f"(`traces/{TRACE.name}`; KS {fit['ks']:.3f}).",
        "",
        f"- Optimum at N + B = {total}: **B = {best['backups']}** (N = {total - best['backups']}), "
        f"{best['time']:.4g} s simulated to {study_target:.0%} test accuracy; the order-statistics estimate "
        f"puts it at B = {best['estimated_backups']}.",
    ]
    workers = facts.get("compare_workers", 8)
    if "backup" in compare:
        for other in ("sync", "async"):
            if other in compare:
                ratio = compare[other] / compare["backup"]
                faster, slower, r = ("backup", other, ratio) if ratio >= 1 else (other, "backup", 1 / ratio)
                lines.append(
                    f"- {faster} reaches {target:.0%} {r:.2f}x faster than {slower} "
                    f"(backup {compare['backup']:.4g} s, {other} {compare[other]:.4g} s; {workers} workers, "
                    "an MLP on the 8x8 digits, learning rates not tuned: one regime of the map below)."
                )
    for label, t in compare.items():
        if label not in ("sync", "backup", "async"):
            lines.append(f"- {label}: {t:.4g} s to {target:.0%}.")
    lines.append(
        f"- Dutta et al.'s bound holds at {facts['convex_below_bound']:.0%} of the evaluations of a "
        "K-sync run on L2-regularised logistic regression."
    )
    return [*lines, ""]


def _ci(row: dict, name: str, digits: int = 3) -> str:
    """``mean [low, high]``, ``mean`` (one seed), or ``-`` (none)."""
    mean = row.get(name)
    if mean is None:
        return "-"
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    if low is None:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def staleness_section(facts: dict) -> list[str]:
    rows, seeds = facts["rows"], len(facts["seeds"])
    lines = [
        "## C1: staleness hurts async SGD, more so in deeper models",
        "",
        f"Async SGD with P workers, MLPs of {facts['width']} units per hidden layer on MNIST-1D, "
        f"{facts['gradients']:,} applied gradients each, {_tuned(facts)}; {seeds} seeds on the test set, "
        "95% Student-t intervals across seeds. Accuracy is the mean of the last three evaluations.",
        "",
        "| hidden layers | P | mean staleness | test accuracy | stale cosine | lr | diverged seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} | {r['workers']} | {_ci(r, 'staleness')} | {_ci(r, 'accuracy')} | "
            f"{_ci(r, 'stale_cosine')} | {r['lr']:g}{_edge(r)} | {r['diverged']}/{r['seeds']} |"
        )
    lines.append("")
    drops = facts["drops"]
    for d in drops:
        sign = "falls" if d["drop"] > 0 else "rises"
        apart = "the intervals are apart" if d["separated"] else "the intervals overlap: no difference shown"
        lines.append(
            f"- {d['depth']} hidden layer(s): accuracy {sign} by {abs(d['drop']):.3f} from P = {d['from_workers']} "
            f"to P = {d['to_workers']} ({apart})."
        )
    hurt = [d for d in drops if d["drop"] > 0 and d["separated"]]
    growing = all(a["drop"] < b["drop"] for a, b in zip(drops, drops[1:], strict=False))
    if len(hurt) == len(drops):
        verdict = "**C1 holds here**: staleness lowers accuracy at every depth beyond the intervals, "
        verdict += "and the drop grows with depth." if growing else "but the drop does not grow steadily with depth."
    elif hurt:
        verdict = "**C1 holds in part**: staleness lowers accuracy beyond the intervals "
        verdict += f"at {len(hurt)} of {len(drops)} depths."
    else:
        verdict = "**C1 is not shown here**: at no depth does accuracy fall beyond the intervals."
    lines += ["", verdict, ""]
    return lines


def sync_vs_async_section(facts: dict) -> list[str]:
    rows, seeds = facts["rows"], len(facts["seeds"])
    lines = [
        "## C2: sync with backups against async at equal simulated time",
        "",
        f"MLPs of {facts['width']} units per hidden layer on MNIST-1D; {_tuned(facts, 'C2')}; "
        f"{seeds} seeds on the test set, 95% Student-t intervals. The budget is the "
        f"simulated time async needs for {facts['gradients']:,} gradients; the target is {facts['target']:.0%} "
        "test accuracy (time interpolated between evaluations).",
        "",
        "| mechanism | P | hidden layers | strategy | B | lr | accuracy at budget | seconds to target (seeds reached) "
        "| ms per update | stale cosine | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_update = _ci({k: (v * 1e3 if isinstance(v, float) else v) for k, v in r.items()}, "time_per_update")
        lines.append(
            f"| {r['mechanism']} | {r['workers']} | {r['depth']} | {r['strategy']} | {r['backups'] or '-'} | "
            f"{r['lr']:g}{_edge(r)} | {_ci(r, 'accuracy')} | "
            f"{_ci(r, 'time_to_target')} ({r['reached']}/{r['seeds']}) | "
            f"{per_update} | {_ci(r, 'stale_cosine')} | {r['diverged']}/{r['seeds']} |"
        )
    lines.append("")
    cells = list(dict.fromkeys((r["mechanism"], r["workers"], r["depth"]) for r in rows))
    wins = {"none": 0, "mechanism": 0}
    for mechanism, workers, depth in cells:
        mine = {
            r["strategy"]: r for r in rows if (r["mechanism"], r["workers"], r["depth"]) == (mechanism, workers, depth)
        }
        sync, other = mine.get("sync + backups"), mine.get("async")
        if sync is None or other is None:
            continue
        verdict, won = _c2_verdict(sync, other)
        wins["none" if mechanism == "none" else "mechanism"] += won
        where = f"P = {workers}, {depth} hidden layers" + ("" if mechanism == "none" else f", {mechanism}")
        lines.append(f"- {where}: {verdict}")
    lines += ["", *_mechanism_effects(rows)]
    lines += [
        "",
        f"**C2 holds in {wins['none']} of {sum(m == 'none' for m, _, _ in cells)} cells with plain SGD, and in "
        f"{wins['mechanism']} of {sum(m != 'none' for m, _, _ in cells)} with a mechanism switched on** (sync + "
        "backups ahead of async beyond the intervals, in accuracy at the budget or in time to the target, and "
        "behind in neither).",
        "",
    ]
    return lines


def _edge(row: dict) -> str:
    return " (edge)" if row.get("lr_at_edge") else ""


def _mechanism_effects(rows: list[dict]) -> list[str]:
    """Per mechanism and strategy: its accuracy at the budget against the same cell without a mechanism."""
    plain = {(r["workers"], r["depth"], r["strategy"]): r for r in rows if r["mechanism"] == "none"}
    out = []
    for r in rows:
        base = plain.get((r["workers"], r["depth"], r["strategy"]))
        if r["mechanism"] == "none" or base is None or None in (r["accuracy"], base["accuracy"]):
            continue
        moved = "apart" if _apart(r, base, "accuracy") else "intervals overlap"
        out.append(
            f"- {r['mechanism']}, {r['strategy']}: accuracy at the budget {base['accuracy']:.3f} -> "
            f"{r['accuracy']:.3f} ({r['accuracy'] - base['accuracy']:+.3f}, {moved})."
        )
    return out


def _tuned(facts: dict, study: str = "C1") -> str:
    """How the study chose its learning rates, as a phrase."""
    if not facts.get("tuned"):
        return "one learning rate per strategy (nothing tuned: toy scale)"
    return {
        "C1": "learning rate tuned per cell on a validation split",
        "C2": "each strategy's learning rate (and B for sync + backups) tuned per cell on a validation split "
        "for accuracy at the budget",
        "map": "learning rate tuned per cell on a validation split for time to the target",
    }[study]


def _c2_verdict(sync: dict, other: dict) -> tuple[str, bool]:
    """One sentence on sync + backups against async, and whether C2 holds there."""
    parts, ahead, behind = [], False, False
    diff = (sync["accuracy"] or 0) - (other["accuracy"] or 0)
    if _apart(sync, other, "accuracy"):
        better = "sync + backups" if diff > 0 else "async"
        parts.append(f"{better} ends {abs(diff):.3f} more accurate")
        ahead, behind = diff > 0, diff < 0
    else:
        parts.append(f"accuracy at the budget ties ({diff:+.3f} for sync + backups, intervals overlap)")
    s_done, a_done = sync["reached"] == sync["seeds"], other["reached"] == other["seeds"]
    if s_done and a_done:
        ratio = other["time_to_target"] / sync["time_to_target"]
        if _apart(sync, other, "time_to_target"):
            faster = "sync + backups" if ratio > 1 else "async"
            parts.append(f"{faster} reaches the target {max(ratio, 1 / ratio):.2f}x sooner")
            ahead, behind = ahead or ratio > 1, behind or ratio < 1
        else:
            parts.append(f"time to target ties (async / sync {ratio:.2f}, intervals overlap)")
    elif s_done != a_done:
        parts.append(f"only {'sync + backups' if s_done else 'async'} reaches the target on every seed")
        ahead, behind = ahead or s_done, behind or a_done
    else:
        parts.append("neither reaches the target on every seed")
    return "; ".join(parts) + ".", ahead and not behind


def tradeoff_map_section(facts: dict) -> list[str]:
    cells = facts["cells"]
    lines_of = list(dict.fromkeys(map_row(c) for c in cells))
    workers = sorted({c["workers"] for c in cells})
    by = {(map_row(c), c["workers"]): c for c in cells}
    lines = [
        "## The map: who reaches the target first",
        "",
        f"Sync + backups (B = P/16, at least 1) against async, MLPs of {facts['width']} units per hidden layer on "
        f"MNIST-1D, {_tuned(facts, 'map')}; {len(facts['seeds'])} seeds on the test set. A cell's winner "
        "reached the target on every seed with the lower mean time; the figure is the runner-up's mean time "
        "over the winner's; `tie` where the two intervals overlap. Rows are the hidden layers, with the "
        "optimizer where it is not plain SGD (momentum: the learning-rate grids x 0.1).",
        "",
        "| hidden layers \\ P | " + " | ".join(str(p) for p in workers) + " |",
        "|---" * (len(workers) + 1) + "|",
    ]
    for row in lines_of:
        lines.append(f"| {row} | " + " | ".join(_map_cell(by.get((row, p))) for p in workers) + " |")
    counts = {}
    for c in cells:
        if c["winner"] and not c["tie"]:
            counts[c["winner"]] = counts.get(c["winner"], 0) + 1
    ties = sum(c["tie"] for c in cells)
    summary = ", ".join(f"{name} wins {n}" for name, n in sorted(counts.items())) or "no strategy wins a cell"
    neither = sum(c["winner"] is None for c in cells)
    lines += ["", f"Of {len(cells)} cells: {summary}; {ties} ties; neither reaches the target in {neither}.", ""]
    edges = [r for r in facts["rows"] if r.get("lr_at_edge")]
    if edges:
        lines += [f"{len(edges)} of {len(facts['rows'])} tuned learning rates are at the edge of their grid.", ""]
    return lines


def _map_cell(cell: dict | None) -> str:
    if cell is None or cell["winner"] is None:
        return "neither"
    if cell["speedup"] is None:
        return f"{cell['winner']} (alone)"
    return f"{cell['winner']} {cell['speedup']:.2f}x" + (" tie" if cell["tie"] else "")
