"""Seeds aggregated and configurations compared: the ``aggregate`` and ``compare`` commands.

Runs that share a seed drew the same computation times (common random numbers), so the
difference between two configurations is best estimated seed by seed: the paired difference
``mean_s (M(config, s) - M(baseline, s))`` over the seeds both ran, with a Student-t interval of
those differences. The shared draws cancel out of it, so its interval is far narrower than one
built from the two configurations' separate intervals. A seed where either side diverged is left
out of the pairs of a training metric (its accuracy is chance, not a result) and counted.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..core.config import RunConfig
from ..io.errors import InputError, named
from ..io.results import check_out_file
from ..plots.style import FigureSize
from .aggregation import (
    aggregate,
    collect,
    diverged,
    interval,
    is_timing,
    metric_names,
    order,
    points,
    value_of,
    varying,
    write_aggregate,
)
from .forest import UNITS, plot_forest
from .reports import Report

HEADLINE = ("time_per_update", "time_per_gradient", "samples_per_second", "final_test_accuracy", "time_to_target")
DIFF = ("diff", "diff_std", "diff_ci_low", "diff_ci_high")
NOTES = {0: "no common seed with the baseline", 1: "one common seed: no interval"}  # by common seeds
DIVERGED_NOTES = {0: ": no pair", 1: ": one pair, no interval"}  # by pairs, after "K of the common seeds diverged"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plus_minus(mean, high) -> str:
    """``mean ± half-width`` (just the mean where there is no interval; ``-`` where no value)."""
    if mean is None:
        return "-"
    return f"{mean:.4g}" if high is None else f"{mean:.4g} ± {high - mean:.2g}"


def _table(header: list[str], body: list[list[str]], left: int) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` (the labels) left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    pad = [str.ljust] * left + [str.rjust] * (len(header) - left)
    cells = (zip(pad, row, widths, strict=True) for row in [header, *body])
    return [("  " + "  ".join(f(c, w) for f, c, w in row)).rstrip() for row in cells]


def _name(row: dict, labels: list[str]) -> str:
    """A point as ``key=value`` pairs: the labels that vary (``strategy`` always)."""
    return " ".join(f"{k}={_cell(row[k])}" for k in labels)


def aggregate_folders(paths: list[Path], *, out: Path | None = None, overwrite: bool = False) -> Report:
    """Aggregate the runs of ``paths`` over seeds (``aggregation.aggregate``) and write ``aggregate.csv``.

    The file goes to ``out``; without it, to ``DIR/aggregate.csv`` when one folder of runs (a sweep,
    or a folder of run folders) is given. That default file is derived data, always replaced; an
    ``out`` given explicitly is replaced only with ``overwrite``.

    Raises:
        InputError: a path holding no run; ``out`` exists and ``overwrite`` is off.
    """
    records = collect(paths)
    labels = varying(records)
    rows = aggregate(records, labels=labels)
    if out is not None:
        check_out_file(out, overwrite=overwrite, inputs=paths)
    elif len(paths) == 1 and not (Path(paths[0]) / "summary.json").exists():
        out = Path(paths[0]) / "aggregate.csv"
    metrics = [m for m in HEADLINE if f"{m}_mean" in rows[0]]
    counts = ["n_seeds", "diverged_runs"] if any(row["diverged_runs"] for row in rows) else ["n_seeds"]
    body = []
    for row in rows:
        cells = [_cell(row[k]) for k in labels] + [str(row[k]) for k in counts]
        for m in metrics:
            cell = _plus_minus(row[f"{m}_mean"], row[f"{m}_ci_high"])
            cells.append(cell + (f" (n={row[f'{m}_n']})" if f"{m}_n" in row else ""))
        body.append(cells)
    lines = [f"{len(records)} runs, {len(rows)} configurations; mean ± half-width of the 95% t interval over seeds"]
    lines += _table([*labels, *(c.replace("_runs", "") for c in counts), *metrics], body, len(labels))
    if any(row["n_seeds"] == 1 for row in rows):
        lines.append("  a configuration with one seed has no interval: run more seeds")
    if len(counts) > 1:
        lines.append("  a diverged run's training metrics (accuracy, loss, quality) are left out of the means")
    if out is None:
        lines.append("  aggregate.csv not written: several folders or a run folder; give --out FILE")
    else:
        write_aggregate(rows, out)
        lines.append(f"  results: {out}")
    return Report(rows, lines)


def parse_baseline(text: str) -> dict[str, str]:
    """``KEY=VALUE[,KEY=VALUE]`` as a dict. Raises InputError on a malformed pair."""
    items: list[str] = []
    for part in text.split(","):  # a value may hold commas (a latency SPEC): a part without FIELD= continues it
        key = part.partition("=")[0].strip()
        if items and (key not in RunConfig.__dataclass_fields__ or "=" not in part):
            items[-1] += "," + part
        else:
            items.append(part)
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(
                f"{named('baseline')} {text}: give KEY=VALUE[,KEY=VALUE], e.g. backups=0 or semantics=tf,backups=0"
            )
        pairs[key.strip()] = value.strip()
    return pairs


def _matches(config: dict, key: str, wanted: str) -> bool:
    value = config.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value).lower() == wanted.lower() or (value is None and wanted.lower() in ("none", "-"))


def paired(records, *, baseline: str | dict | None = None, metrics: list[str] | None = None) -> tuple[list[dict], dict]:
    """Every point against the baseline point, metric by metric, paired by seed.

    Args:
        records: runs (``aggregation.collect``).
        baseline: the baseline point's label values, ``"backups=0"`` or ``{"backups": 0}``; it must match
            exactly one point. Default: the first point in sorted order.
        metrics: summary keys; default: the headline metrics that the runs have.

    Returns:
        (rows, info): one row per point and metric with the point's labels, ``metric``, ``n_seeds``,
        ``diverged_runs`` (the point's runs that diverged), ``mean`` (over the point's seeds),
        ``baseline_mean`` and ``n_pairs`` (over the seeds both have), ``diverged_pairs`` (seeds both ran
        that a training metric leaves out of the pairs because either side diverged),
        ``diff`` (mean of the per-seed differences), ``diff_std``, ``diff_ci_low``, ``diff_ci_high``
        (95% Student-t), ``ratio`` (mean over the common seeds over the baseline's) and ``note``;
        ``info`` holds ``labels``, ``metrics``, ``points`` (the points' names, in the rows' order),
        ``baseline`` (its name) and ``chosen`` (how).

    Raises:
        InputError: an unknown metric or baseline key; a baseline matching no point or several.
    """
    groups = points(records)
    labels = varying(records)
    known = metric_names(records)
    metrics = list(metrics) if metrics else [m for m in HEADLINE if m in known]
    for m in metrics:
        if m not in known:
            raise InputError(
                f"{named('metric')} {m}: no such numeric metric in these runs (they have: {', '.join(known)})"
            )
    heads = [{**{k: runs[0].config.get(k) for k in labels}, "_runs": runs} for runs in groups.values()]
    heads.sort(key=order(labels))
    names = [_name(h, labels) for h in heads]
    if baseline is None or baseline in ("", {}):
        base, chosen = heads[0], "the first point; choose another with --baseline KEY=VALUE"
    else:
        wanted = parse_baseline(baseline) if isinstance(baseline, str) else {k: str(v) for k, v in baseline.items()}
        config = heads[0]["_runs"][0].config
        for key in wanted:
            if key not in config:
                raise InputError(
                    f"{named('baseline')} {key}: not a configuration field (the points vary in {', '.join(labels)})"
                )
        found = [h for h in heads if all(_matches(h["_runs"][0].config, k, v) for k, v in wanted.items())]
        if len(found) != 1:
            how = "matches no point" if not found else f"matches {len(found)} points"
            raise InputError(
                f"{named('baseline')} {_name(wanted, list(wanted))}: {how}; the points: {'; '.join(names)}"
            )
        base, chosen = found[0], "--baseline"
    by_seed = {m: {r.config["seed"]: value_of(r, m) for r in base["_runs"]} for m in metrics}
    base_seeds = {r.config["seed"] for r in base["_runs"]}
    base_diverged = {r.config["seed"] for r in base["_runs"] if diverged(r)}
    rows = []
    for head in heads:
        gone = {r.config["seed"] for r in head["_runs"] if diverged(r)}
        shared = {r.config["seed"] for r in head["_runs"]} & base_seeds
        for m in metrics:
            mine = {r.config["seed"]: value_of(r, m) for r in head["_runs"]}
            theirs = by_seed[m]
            common = [s for s in mine if mine[s] is not None and theirs.get(s) is not None]
            values = [v for v in mine.values() if v is not None]
            left_out = 0 if is_timing(m) else len(shared & (gone | base_diverged))
            row = {k: head[k] for k in labels}
            row |= {"metric": m, "n_seeds": len(head["_runs"]), "diverged_runs": len(gone), "n": len(values)}
            row["mean"] = interval(values)[0]
            a, b = math.fsum(mine[s] for s in common), math.fsum(theirs[s] for s in common)
            row |= {"baseline_mean": b / len(common) if common else None, "n_pairs": len(common)}
            row["diverged_pairs"] = left_out
            row |= dict(zip(DIFF, interval([mine[s] - theirs[s] for s in common]), strict=True))
            row["ratio"] = a / b if common and b != 0 else None
            row["note"] = "baseline" if head is base else NOTES.get(len(common), "")
            if left_out and head is not base:
                row["note"] = f"{left_out} of the common seeds diverged" + DIVERGED_NOTES.get(len(common), "")
            rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    info = {"labels": labels, "metrics": metrics, "points": names, "baseline": _name(base, labels), "chosen": chosen}
    return rows, info


def compare_runs(
    paths: list[Path],
    *,
    baseline: str | None = None,
    metrics: list[str] | None = None,
    out: Path | None = None,
    figsize: str | None = None,
) -> Report:
    """The ``compare`` command: paired differences against a baseline point, as a table; with ``out``,
    ``compare.csv`` and the forest plot ``compare.png``/``.pdf`` (``figsize`` "column" or "page": a
    paper's width) as the report's files."""
    FigureSize.of(figsize)  # a bad size refused before the runs are read
    rows, info = paired(collect(paths), baseline=baseline, metrics=metrics)
    labels = info["labels"]
    lines = [
        f"baseline: {info['baseline']} ({info['chosen']})",
        "diff: mean over common seeds of (config - baseline) ± half-width of its 95% t interval (paired by seed)",
    ]
    for m in info["metrics"]:
        unit = f" ({UNITS[m]})" if m in UNITS else ""
        lines.append(f"{m}{unit}")
        body = []
        for r in (r for r in rows if r["metric"] == m):
            cells = [_cell(r[k]) for k in labels] + [f"{r['n']}/{r['n_seeds']}", _cell(r["mean"])]
            if r["note"] == "baseline":
                body.append([*cells, "baseline", "", ""])
            else:
                body.append([*cells, _plus_minus(r["diff"], r["diff_ci_high"]), _cell(r["ratio"]), r["note"]])
        lines += _table([*labels, "seeds", "mean", "diff", "ratio", ""], body, len(labels))
    files = {}
    if out is not None:
        files["compare.csv"] = lambda path: write_aggregate(rows, path)
        files["compare.png"] = lambda path: plot_forest(rows, info, path.with_suffix(""), figsize=figsize)
        lines.append(f"results: {out / 'compare.csv'}, {out / 'compare.png'}")
    return Report(rows, lines, files)
