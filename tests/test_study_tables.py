"""Study tables (``aggregate`` and ``compare``) against an independent pandas/SciPy recomputation.

Hypothesis draws whole studies: one to four configurations (points), each run with its own subset
of seeds (so seeds are missing, shared only in part, or not at all; one seed; seeds that sort
differently as text), and summaries whose metrics are numbers (small integers, to get ties and
zero sums, or floats), absent, ``null`` (as ``summary.json`` writes a non-finite value, listed under
``non_finite``), raw NaN/inf, or dropped by a diverged run; a diverged run (``diverged`` true, or
an older run's reason string) may also hold training values (chance accuracy), which never count.
Every column of ``aggregate`` (and of ``aggregate.csv``) and of ``paired``/``compare`` (and of
``compare.csv``) is recomputed from the drawn numbers with pandas (a ``groupby`` for aggregate; for
compare, a table of values by seed from which the baseline's are subtracted by pandas' index
alignment, which pairs by seed),
``scipy.stats.t.ppf`` and, for the ratio, exact fractions, as the README and docstrings define them:

- aggregate: one row per point sorted by the varying options (numbers numerically), ``n_seeds``,
  ``diverged_runs``, ``seeds`` (numerically sorted), and per metric ``M_mean``, ``M_std`` (ddof=1), ``M_ci_low``,
  ``M_ci_high`` (``mean ± t_{0.975,n-1} std/sqrt(n)``) over the runs that have a finite M, empty
  (None) where undefined, and ``M_n`` in every row when some run of some point lacks M. A diverged
  run's training metrics (``TRAINING``) are missing; its timing metrics count.
- compare: per point and metric, ``diverged_runs``, ``mean`` and ``n`` over the point's runs, and
  over the seeds that both the point and the baseline have a finite value for (matched *by seed*):
  ``n_pairs``, ``diverged_pairs`` (for a training metric, the seeds both ran where either diverged),
  ``baseline_mean``, ``diff`` (mean of per-seed differences), ``diff_std``, the paired-t interval,
  ``ratio`` (mean over common seeds / baseline's mean over them) and ``note``.

Tolerances: each float must agree with the recomputation to ``1e-12 * (|expected| + scale)``, where
``scale`` is the largest magnitude among the values it was computed from (an absolute floor so that a
mean or std near zero after cancellation is not held to a relative bound it cannot meet; a ddof,
t-quantile, pairing or missing-value bug moves the result by far more).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats
from stragglersim.io.errors import InputError
from stragglersim.studies.aggregation import (
    RunRecord,
    aggregate,
    collect,
    metric_names,
    points,
    varying,
    write_aggregate,
)
from stragglersim.studies.comparison import compare_runs, paired

TOL = 1e-12
SEED_POOL = (0, 1, 2, 3, 10)  # 10 sorts after 3 as a number, before 2 as text
METRICS = ("time_per_update", "samples_per_second", "time_to_target", "final_test_accuracy", "gradients_dropped")
HEADLINE = ("time_per_update", "time_per_gradient", "samples_per_second", "final_test_accuracy", "time_to_target")
TRAINING = ("final_test_accuracy", "time_to_target")  # what a diverged run never reaches
LABEL_FIELDS = ("backups", "semantics", "comm_latency")  # in RunConfig's field order, after ``strategy``
MISSING = "missing"  # the key is not in the summary at all
DIFF = ("diff", "diff_std", "diff_ci_low", "diff_ci_high")
NOTES = {0: "no common seed with the baseline", 1: "one common seed: no interval"}
DEFAULT = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Study:
    """Points (configurations without the seed) and runs ``(point index, seed, cells, diverged)``,
    in the order the reader meets them; ``cells`` maps each metric to its drawn value or MISSING."""

    points: tuple
    runs: tuple


# ---------------------------------------------------------------- drawing studies


def _config(strategy, backups, semantics, comm_latency):
    config = {"strategy": strategy, "workers": 4, "backups": backups, "comm_latency": comm_latency}
    if semantics is not None:  # config.toml leaves out a None field (sync has no semantics)
        config["semantics"] = semantics
    return config


POINT = st.tuples(
    st.sampled_from(["backup", "sync"]),
    st.sampled_from([0, 2, 10]),  # 10 sorts after 2 as a number
    st.sampled_from(["tf", "drop", "cancel"]),
    st.sampled_from([0.0, 2.5, 10.0]),
).map(lambda p: (*p[:2], None, p[3]) if p[0] == "sync" else p)  # sync has no semantics
FLOAT = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False).map(lambda v: 0.0 if abs(v) < 1e-6 else v)
SPECIAL = [-3, -2, -1, 0, 1, 2, 3, 0.5, MISSING, None, math.nan, math.inf, -math.inf]  # ints: ties and zero sums
CELL = st.one_of(st.sampled_from(SPECIAL), FLOAT)


@st.composite
def studies(draw, max_points=4):
    """A drawn study: each point runs a random subset of SEED_POOL in a random order, each run's
    summary lists the metrics in its point's random key order (which decides the metrics' first-seen
    order), a quarter of the runs diverged (no training metrics); the points' runs are given one
    point after the other or interleaved."""
    configs = draw(st.lists(POINT, min_size=1, max_size=max_points, unique=True))
    by_point = []
    for i in range(len(configs)):
        order = draw(st.permutations(METRICS))
        runs = []
        for seed in draw(st.lists(st.sampled_from(SEED_POOL), min_size=1, max_size=len(SEED_POOL), unique=True)):
            cells = {m: draw(CELL) for m in order}
            diverged = draw(st.sampled_from([True, "loss nan at update 7"])) if draw(st.integers(0, 3)) == 0 else None
            if diverged and draw(st.booleans()):  # else an older run's last evaluation: chance accuracy
                cells |= {m: None for m in TRAINING}
            runs.append((i, seed, cells, diverged))
        by_point.append(runs)
    if draw(st.booleans()):  # interleaved: point 0's first run, point 1's first run, ...
        runs = [run for k in range(len(SEED_POOL)) for runs in by_point for run in runs[k : k + 1]]
    else:
        runs = [run for runs in reversed(by_point) for run in runs]
    return Study(tuple(_config(*c) for c in configs), tuple(runs))


def summary_of(study, run, *, as_json):
    """The run's summary as ``summary.json`` holds it (``as_json``: a non-finite number as null, named
    under ``non_finite``) or as a reader might get it otherwise (raw NaN and inf kept)."""
    point, seed, cells, diverged = run
    config = study.points[point]
    summary = {
        "strategy": config["strategy"],
        "semantics": config.get("semantics"),
        "workers": 4,
        "backups": config["backups"],
        "total_workers": 4 + config["backups"],
        "lr": 0.1,  # configuration echoes and booleans are not metrics
        "param_count": 1234,
        "seed": seed,
        "trace_exhausted": False,
        "stalled": None,
    }
    non_finite = {}
    for m, value in cells.items():
        if value is MISSING:
            continue
        if as_json and isinstance(value, float) and not math.isfinite(value):
            non_finite[m] = "nan: undefined; written as null"
            value = None
        summary[m] = value
    summary["diverged"] = diverged
    summary["version"] = "0.1.0"
    if non_finite:
        summary["non_finite"] = non_finite
    return summary


def records_of(study, *, as_json=False):
    return [
        RunRecord.of(Path(f"/study/p{run[0]}-s{run[1]}"), {**study.points[run[0]], "seed": run[1]}, summary)
        for run in study.runs
        for summary in [summary_of(study, run, as_json=as_json)]
    ]


def write_study(study, folder: Path) -> None:
    """Real run folders: ``config.toml`` (None fields left out) and strict ``summary.json``."""
    for run in study.runs:
        path = folder / f"p{run[0]}-s{run[1]}"
        path.mkdir()
        config = {**study.points[run[0]], "seed": run[1]}
        path.joinpath("config.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
        path.joinpath("summary.json").write_text(json.dumps(summary_of(study, run, as_json=True), allow_nan=False))


# ---------------------------------------------------------------- the oracle


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value) -> float:
    """A summary value as the tables use it: a finite number, else NaN (missing)."""
    return float(value) if is_number(value) and math.isfinite(value) else math.nan


def known_metrics(study, summaries):
    """The drawn metrics some run holds a number for (NaN included: it is a number), first seen first."""
    names = []
    for summary in summaries:
        names += [k for k, v in summary.items() if k in METRICS and is_number(v) and k not in names]
    return names


def labels_of(study):
    """``strategy`` and the options whose value differs between points."""
    return ["strategy"] + [f for f in LABEL_FIELDS if len({str(p.get(f)) for p in study.points}) > 1]


def sorted_points(study, labels):
    """Point indices in the tables' order: by the labels, numbers numerically, text as text (a column
    holds numbers only or text and None only)."""
    return sorted(
        range(len(study.points)),
        key=lambda i: tuple(v if is_number(v) else str(v) for v in (study.points[i].get(k) for k in labels)),
    )


def counted(run, summary, m) -> float:
    """A run's metric as the tables count it: NaN for a training metric of a run that diverged."""
    return math.nan if run[3] and m in TRAINING else number(summary.get(m))


def long_table(study, summaries, metrics):
    """One row per run and metric: point, seed, metric, value (NaN where missing, not finite or diverged)."""
    rows = [
        (run[0], run[1], m, counted(run, summary, m))
        for run, summary in zip(study.runs, summaries, strict=True)
        for m in metrics
    ]
    table = pd.DataFrame(rows, columns=["point", "seed", "metric", "value"])
    return table.assign(size=table.value.abs())


def student(n, mean, std):
    """The 95% Student-t interval of a mean of ``n`` values (NaN where n < 2)."""
    if n < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def expected_aggregate(study, summaries):
    """Rows of ``aggregate`` recomputed with a pandas groupby: (row, scale per column) in the expected order."""
    metrics = known_metrics(study, summaries)
    labels = labels_of(study)
    table = long_table(study, summaries, metrics)
    groups = table.groupby(["point", "metric"])
    values = groups["value"]
    cells = pd.DataFrame(
        {"n": values.count(), "mean": values.mean(), "std": values.std(ddof=1), "scale": groups["size"].max()}
    ).to_dict("index")
    runs = pd.DataFrame([(r[0], r[1]) for r in study.runs], columns=["point", "seed"])
    seeds = runs.groupby("point")["seed"].agg(lambda s: sorted(s)).to_dict()
    gone = Counter(r[0] for r in study.runs if r[3])
    incomplete = {m for (p, m), cell in cells.items() if cell["n"] < len(seeds[p])}
    rows = []
    for p in sorted_points(study, labels):
        row = {k: study.points[p].get(k) for k in labels}
        row |= {"n_seeds": len(seeds[p]), "diverged_runs": gone[p], "seeds": " ".join(map(str, seeds[p]))}
        scales = {}  # column: the largest magnitude among the values it comes from
        for m in metrics:
            cell = cells[(p, m)]
            low, high = student(cell["n"], cell["mean"], cell["std"])
            row |= {f"{m}_mean": cell["mean"], f"{m}_std": cell["std"], f"{m}_ci_low": low, f"{m}_ci_high": high}
            if m in incomplete:
                row[f"{m}_n"] = int(cell["n"])
            scale = 0.0 if math.isnan(cell["scale"]) else cell["scale"]
            scales |= {f"{m}_{s}": scale for s in ("mean", "std", "ci_low", "ci_high")}
        rows.append((row, scales))
    return rows


def expected_paired(study, summaries, base, metrics):
    """Rows of ``paired`` recomputed with pandas: a table of values with one row per point and metric and
    one column per seed (NaN: no run, or no finite value), from which the baseline's rows are
    subtracted by pandas' alignment on metric and *seed*, so a seed that either side lacks drops out
    of the pairs; row-wise moments, SciPy's t quantile, exact fractions for the ratio. Returns
    (row, scale per column) pairs."""
    if not metrics:
        return []
    labels = labels_of(study)
    by_seed = {}  # (point, metric): {seed: value}
    for run, summary in zip(study.runs, summaries, strict=True):
        for m in metrics:
            by_seed.setdefault((run[0], m), {})[run[1]] = counted(run, summary, m)
    wide = pd.DataFrame(list(by_seed.values()), index=pd.MultiIndex.from_tuples(by_seed, names=["point", "metric"]))
    theirs = wide.xs(base, level="point")
    d = wide.sub(theirs, level="metric")  # x(point, metric, seed) - y(metric, seed), NaN unless both
    x = wide.where(d.notna())
    y = x.mul(0.0).add(theirs, level="metric")  # the baseline's values on the same seeds
    columns = {
        "n": wide.count(axis=1),
        "mean": wide.mean(axis=1),
        "n_pairs": d.count(axis=1),
        "diff": d.mean(axis=1),
        "diff_std": d.std(axis=1, ddof=1),
        "baseline_mean": y.mean(axis=1),
        "scale": wide.abs().max(axis=1).fillna(0.0),
        "a": exact_sums(x),
        "b": exact_sums(y),
    }
    lists = (c if isinstance(c, list) else c.tolist() for c in columns.values())
    cells = {key: dict(zip(columns, cell, strict=True)) for key, *cell in zip(wide.index, *lists, strict=True)}
    runs = Counter(run[0] for run in study.runs)
    gone = Counter(run[0] for run in study.runs if run[3])
    ran = {(run[0], run[1]): bool(run[3]) for run in study.runs}  # (point, seed): diverged
    rows = []
    for p in sorted_points(study, labels):
        for m in metrics:
            cell = cells[(p, m)]
            n_pairs = int(cell["n_pairs"])
            low, high = student(n_pairs, cell["diff"], cell["diff_std"])
            row = {k: study.points[p].get(k) for k in labels}
            row |= {"metric": m, "n_seeds": runs[p], "diverged_runs": gone[p]}
            row |= {"n": int(cell["n"]), "mean": cell["mean"]}
            both = [s for (q, s) in ran if q == p and (base, s) in ran]
            left_out = sum(ran[(p, s)] or ran[(base, s)] for s in both) if m in TRAINING else 0
            row |= {"baseline_mean": cell["baseline_mean"], "n_pairs": n_pairs, "diverged_pairs": left_out}
            row |= {k: cell[k] for k in ("diff", "diff_std")} | {"diff_ci_low": low, "diff_ci_high": high}
            row["ratio"] = float(cell["a"] / cell["b"]) if cell["b"] != 0 else None
            row["note"] = "baseline" if p == base else NOTES.get(n_pairs, "")
            if left_out and p != base:
                tail = {0: ": no pair", 1: ": one pair, no interval"}.get(n_pairs, "")
                row["note"] = f"{left_out} of the common seeds diverged{tail}"
            scale = max(cell["scale"], cells[(base, m)]["scale"])
            rows.append((row, dict.fromkeys(["mean", "baseline_mean", *DIFF, "ratio"], scale)))
    return rows


def exact_sums(frame) -> list:
    """Each row's exact sum (a Fraction) over its non-NaN cells."""
    return [sum((Fraction(v) for v in row if not math.isnan(v)), Fraction(0)) for row in frame.to_numpy().tolist()]


def check_row(got: dict, want: dict, scale: dict, where: str) -> None:
    """Same columns in the same order; text, counts and labels exactly, computed floats (the keys of
    ``scale``, the largest magnitude each comes from) to TOL, undefined values as None."""
    assert list(got) == list(want), where
    for key, expected in want.items():
        value = got[key]
        if isinstance(expected, float) and math.isnan(expected) or expected is None:
            assert value is None, (where, key, value)
        elif key in scale:
            tol = TOL * (abs(expected) + scale[key])
            assert isinstance(value, float) and abs(value - expected) <= tol, (where, key, value, expected, tol)
        else:
            assert value == expected and type(value) is type(expected), (where, key, value, expected)


def check_aggregate(study, records, rows) -> None:
    summaries = [r.summary for r in records]
    expected = expected_aggregate(study, summaries)
    assert len(rows) == len(expected)
    for got, (want, scales) in zip(rows, expected, strict=True):
        check_row(got, want, scales, f"aggregate {want}")


def baseline_choice(study, choice):
    """(the ``baseline`` argument, the expected baseline point) for a drawn choice."""
    labels = labels_of(study)
    if choice is None:
        return None, sorted_points(study, labels)[0]  # the first point in sorted order
    how, index = choice
    index %= len(study.points)
    values = {k: study.points[index].get(k) for k in labels}
    if how == "dict":
        return values, index
    return ",".join(f"{k}={v}" for k, v in values.items()), index


def check_paired(study, records, choice, metrics):
    argument, base = baseline_choice(study, choice)
    summaries = [r.summary for r in records]
    known = known_metrics(study, summaries)
    wanted = [m for m in HEADLINE if m in known] if metrics is None else metrics
    rows, info = paired(records, baseline=argument, metrics=metrics)
    expected = list(expected_paired(study, summaries, base, wanted))
    assert len(rows) == len(expected) and info["metrics"] == wanted and info["labels"] == labels_of(study)
    for got, (want, scale) in zip(rows, expected, strict=True):
        check_row(got, want, scale, f"paired {want}")
    return rows, expected


CHOICE = st.one_of(st.none(), st.tuples(st.sampled_from(["dict", "text"]), st.integers(0, 3)))

# Partial overlap, by hand: baseline seeds 0 1 2, the other point 1 2 3 (pairing by position, or
# averaging unpaired seeds, gives another diff), one point with no common seed and one with one.
OVERLAP = Study(
    (_config("backup", 0, "tf", 0.0), _config("backup", 2, "tf", 0.0), _config("backup", 10, "tf", 0.0)),
    tuple(
        (p, s, {"time_per_update": v, "samples_per_second": float(s), "time_to_target": None}, False)
        for p, s, v in [(0, 0, 10), (0, 1, 20), (0, 2, 40), (1, 1, 17), (1, 2, 35), (1, 3, 1), (2, 3, 5.5), (2, 10, 7)]
    ),
)
ONE_SEED = Study((_config("sync", 0, None, 2.5),), ((0, 0, {"time_per_update": 1.5}, True),))


# ---------------------------------------------------------------- properties


@given(study=studies(), as_json=st.booleans())
@settings(max_examples=100, **DEFAULT)
@example(study=OVERLAP, as_json=False)
@example(study=ONE_SEED, as_json=True)
def test_aggregate_matches_a_pandas_scipy_recomputation(study, as_json):
    """Every column of every ``aggregate`` row, in order, the rows' order (by the varying options,
    numbers numerically) and the metrics' (first seen), with values absent, None, NaN or infinite
    (raw, or as summary.json has them: null); the runs of each point sorted by seed as numbers."""
    records = records_of(study, as_json=as_json)
    assert metric_names(records) == known_metrics(study, [r.summary for r in records])
    assert varying(records) == labels_of(study)
    groups = points(records)
    assert sorted(len(g) for g in groups.values()) == sorted(
        sum(1 for r in study.runs if r[0] == p) for p in range(len(study.points))
    )
    for runs in groups.values():
        assert [r.config["seed"] for r in runs] == sorted(r.config["seed"] for r in runs)
    check_aggregate(study, records, aggregate(records))


PICK = st.none() | st.lists(st.integers(0, 4), min_size=1, unique=True)  # metrics: default, or some known ones


@given(study=studies(), choice=CHOICE, pick=PICK, as_json=st.booleans())
@settings(max_examples=150, **DEFAULT)
@example(study=OVERLAP, choice=("dict", 0), pick=None, as_json=False)
@example(study=OVERLAP, choice=None, pick=[0], as_json=False)
@example(study=ONE_SEED, choice=None, pick=None, as_json=True)
def test_paired_comparison_matches_a_recomputation_paired_by_seed(study, choice, pick, as_json):
    """Every column of ``paired``: seeds matched by value (a point's seeds the baseline lacks, and the
    baseline's the point lacks, left out of diff, baseline_mean and ratio but not of mean), a
    baseline given as a dict, as ``KEY=VALUE`` text or left to default, the default and chosen metrics."""
    records = records_of(study, as_json=as_json)
    known = known_metrics(study, [r.summary for r in records])
    metrics = None if pick is None or not known else list(dict.fromkeys(known[i % len(known)] for i in pick))
    check_paired(study, records, choice, metrics)


def check_run_folders(study, choice) -> None:
    """Write the study as run folders, read them with ``collect`` and check every table against the oracle."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "runs"
        folder.mkdir()
        write_study(study, folder)
        records = collect([folder])
        assert len(records) == len(study.runs)
        by_name = {r.path.name: r for r in records}
        ordered = [by_name[f"p{run[0]}-s{run[1]}"] for run in study.runs]  # the study's order, for the oracle
        summaries = [r.summary for r in ordered]
        metrics = known_metrics(study, summaries)
        assert set(metric_names(records)) == set(metrics)  # the order is first seen in collect's folder order
        rows = aggregate(records)
        expected = expected_aggregate(study, summaries)
        assert len(rows) == len(expected)
        for got, (want, scales) in zip(rows, expected, strict=True):
            assert set(got) == set(want)
            check_row({k: got[k] for k in want}, want, scales, "collected")
        write_aggregate(rows, Path(tmp) / "aggregate.csv")
        with open(Path(tmp) / "aggregate.csv", newline="") as f:
            table = list(csv.DictReader(f))
        header = list(table[0])
        for m in metrics:  # each metric's columns together, M_n (where there is one) beside M_ci_high
            group = [f"{m}_{s}" for s in ("mean", "std", "ci_low", "ci_high")] + [f"{m}_n"] * (f"{m}_n" in header)
            start = header.index(group[0])
            assert header[start : start + len(group)] == group
        for cells, (want, scales) in zip(table, expected, strict=True):
            check_cells(cells, want, scales)

        argument, base = baseline_choice(study, choice)
        if isinstance(argument, dict):  # the command takes text
            argument = ",".join(f"{k}={v}" for k, v in argument.items())
        wanted = [m for m in HEADLINE if m in metrics]
        if not wanted:
            return
        report = compare_runs([folder], baseline=argument, out=Path(tmp))
        expected = list(expected_paired(study, summaries, base, wanted))
        assert len(report.data) == len(expected)
        for got, (want, scale) in zip(report.data, expected, strict=True):
            check_row(got, want, scale, f"compare_runs {want}")
        # the printed table: one line per point and metric, "n/n_seeds" after the labels, the note last
        labels = labels_of(study)
        for m in wanted:
            start = next(i for i, line in enumerate(report.lines) if line == m or line.startswith(f"{m} ("))
            body = report.lines[start + 2 : start + 2 + len(study.points)]
            for line, (want, _) in zip(body, [e for e in expected if e[0]["metric"] == m], strict=True):
                assert line.split()[len(labels)] == f"{want['n']}/{want['n_seeds']}", line
                assert line.endswith(want["note"]), (line, want["note"])
        report.files["compare.csv"](Path(tmp) / "compare.csv")
        with open(Path(tmp) / "compare.csv", newline="") as f:
            written = list(csv.DictReader(f))
        assert len(written) == len(expected)
        for cells, (want, scale) in zip(written, expected, strict=True):
            assert list(cells) == list(want)
            check_cells(cells, want, scale)


def check_cells(cells: dict, want: dict, scale) -> None:
    """A CSV row against the oracle: numbers to TOL, undefined values as empty cells, the rest as text."""
    for key, value in want.items():
        cell = cells[key]
        if key in scale and not (value is None or math.isnan(value)):
            tol = TOL * (abs(value) + scale[key])
            assert cell != "" and abs(float(cell) - value) <= tol, (key, cell, value)
        else:
            empty = value is None or (isinstance(value, float) and math.isnan(value))
            assert cell == ("" if empty else str(value)), (key, cell, value)


@given(study=studies(max_points=3), choice=CHOICE)
@settings(max_examples=25, **DEFAULT)
@example(study=OVERLAP, choice=("text", 0))
def test_run_folders_through_collect_aggregate_csv_and_compare_csv(study, choice):
    """Real run folders (``config.toml`` without None fields, strict ``summary.json`` with null and
    ``non_finite``) read by ``collect``: ``aggregate`` and ``aggregate.csv`` (empty cells for undefined
    values, ``M_n`` beside ``M_ci_high``), ``compare_runs``' rows, table cells and ``compare.csv``."""
    check_run_folders(study, choice)


@given(study=studies(), which=st.integers(0, 100))
@settings(max_examples=20, **DEFAULT)
def test_the_same_configuration_and_seed_twice_is_refused(study, which):
    """A run given twice under two paths (same point, same seed) is an error, never a second sample."""
    records = records_of(study)
    twin = records[which % len(records)]
    records.append(RunRecord(Path("/elsewhere") / twin.path.name, twin.config, twin.summary))
    with pytest.raises(InputError, match="the same configuration and seed"):
        aggregate(records)
    with pytest.raises(InputError, match="the same configuration and seed"):
        paired(records)


def test_partial_overlap_by_hand():
    """Baseline B=0 ran seeds 0 1 2 (10, 20, 40), B=2 ran 1 2 3 (17, 35, 1): only seeds 1 and 2 pair,
    d = (-3, -5), so diff = -4, std sqrt(2), and with one degree of freedom t_{0.975} = tan(0.475 pi):
    the interval is -4 ± tan(0.475 pi). Pairing by position would give (7, 15, -39), diff -17/3;
    the difference of the two means over all seeds gives 53/3 - 70/3."""
    rows, info = paired(records_of(OVERLAP), baseline="backups=0", metrics=["time_per_update"])
    assert info["baseline"] == "strategy=backup backups=0"
    base, two, ten = rows
    half = math.tan(0.475 * math.pi)
    assert base["note"] == "baseline" and base["diff"] == 0.0 and base["ratio"] == 1.0 and base["n_pairs"] == 3
    assert (two["n_seeds"], two["n"], two["n_pairs"], two["note"]) == (3, 3, 2, "")
    assert two["mean"] == pytest.approx(53 / 3, rel=1e-15) and two["baseline_mean"] == 30.0
    assert two["diff"] == -4.0 and two["diff_std"] == pytest.approx(math.sqrt(2), rel=1e-15)
    assert (two["diff_ci_low"], two["diff_ci_high"]) == pytest.approx((-4 - half, -4 + half), rel=1e-13)
    assert two["ratio"] == pytest.approx(52 / 60, rel=1e-15)
    assert (ten["n_pairs"], ten["note"], ten["diff"], ten["baseline_mean"], ten["ratio"]) == (
        0,
        "no common seed with the baseline",
        None,
        None,
        None,
    )
    assert ten["mean"] == 6.25
    # against B=2, B=10 shares seed 3 only: a difference, no interval
    rows, _ = paired(records_of(OVERLAP), baseline={"backups": 2}, metrics=["time_per_update"])
    assert rows[2]["n_pairs"] == 1 and rows[2]["diff"] == 4.5 and rows[2]["diff_std"] is None
    assert rows[2]["diff_ci_low"] is None and rows[2]["note"] == "one common seed: no interval"


def test_aggregate_by_hand():
    """The same study aggregated: rows by backups as numbers (0, 2, 10; as text 10 would come second);
    B=0: 10, 20, 40 has mean 70/3 and std sqrt(700/3), and t_{0.975} with two degrees of freedom is
    0.95 / sqrt(2 * 0.975 * 0.025); B=10 ran seeds 3 and 10 (in that order): 5.5 and 7, std 1.5/sqrt(2),
    half-width tan(0.475 pi) * 0.75. time_to_target is null everywhere: not a metric at all."""
    rows = aggregate(records_of(OVERLAP))
    assert [(r["backups"], r["n_seeds"], r["seeds"]) for r in rows] == [
        (0, 3, "0 1 2"),
        (2, 3, "1 2 3"),
        (10, 2, "3 10"),
    ]
    zero, _, ten = rows
    assert zero["time_per_update_mean"] == pytest.approx(70 / 3, rel=1e-15)
    assert zero["time_per_update_std"] == pytest.approx(math.sqrt(700 / 3), rel=1e-15)
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) * math.sqrt(700 / 3) / math.sqrt(3)
    assert zero["time_per_update_ci_low"] == pytest.approx(70 / 3 - half, rel=1e-13)
    assert zero["time_per_update_ci_high"] == pytest.approx(70 / 3 + half, rel=1e-13)
    assert ten["time_per_update_mean"] == 6.25 and ten["time_per_update_std"] == pytest.approx(1.5 / math.sqrt(2))
    assert ten["time_per_update_ci_high"] == pytest.approx(6.25 + 0.75 * math.tan(0.475 * math.pi), rel=1e-13)
    assert not any(key.startswith("time_to_target") or key.endswith("_n") for key in ten)


# ---------------------------------------------------------------- more examples (slow)


@pytest.mark.slow
@given(study=studies(), choice=CHOICE, pick=PICK, as_json=st.booleans())
@settings(max_examples=200, **DEFAULT)
def test_many_more_studies(study, choice, pick, as_json):
    """The two in-memory properties above over many more drawn studies."""
    records = records_of(study, as_json=as_json)
    check_aggregate(study, records, aggregate(records))
    known = known_metrics(study, [r.summary for r in records])
    metrics = None if pick is None or not known else list(dict.fromkeys(known[i % len(known)] for i in pick))
    check_paired(study, records, choice, metrics)


@pytest.mark.slow
@given(study=studies(), choice=CHOICE)
@settings(max_examples=100, **DEFAULT)
def test_many_more_run_folders(study, choice):
    """The run-folder property above over more drawn studies."""
    check_run_folders(study, choice)
