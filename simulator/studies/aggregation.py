"""Seeds aggregated honestly: one row per configuration, Student-t intervals across seeds.

A *point* is a configuration without its seed. Runs of one point differ only in their random
draws, so the spread of a metric over them is the run-to-run variability a reader must see;
the interval is ``mean ± t_{0.975, n-1} · std / sqrt(n)`` with the sample std (``ddof=1``).
With one seed there is no spread to estimate: std and interval are left empty, never faked.

A run that diverged (its loss became NaN or infinite) is counted in ``diverged_runs`` and its
training metrics (accuracy, loss, gradient quality, time to target: every metric but the
simulator's timing) are left out of the means: its last accuracy is chance, not a result. Its
timing stands, since timing never depends on gradient values.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from scipy import stats

from ..core.config import RunConfig
from ..io.errors import InputError
from ..io.results import write_results

# Summary keys that echo the configuration (every RunConfig field, and these) are not metrics.
NOT_METRICS = {"total_workers", "version", "param_count", "diverged_at"}
# The event simulation's own numbers: they hold for a run that diverged (up to where it stopped).
TIMING = {
    "updates",
    "sim_time",
    "mean_iteration_time",
    "std_iteration_time",
    "time_per_update",
    "time_per_gradient",
    "samples_per_second",
    "repeat_contributions",
    "mean_staleness",
    "max_staleness",
    "wall_seconds",
    "updates_per_wall_second",
}
LEVEL = 0.95
TUNE_FILE, FINAL = "tune.toml", "final"  # a tuning folder (studies.tuning) and its final runs, which it reports
DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not None}  # as config.toml omits None


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its folder, configuration and summary."""

    path: Path
    config: dict
    summary: dict

    @classmethod
    def of(cls, path: Path, config: dict, summary: dict) -> RunRecord:
        """The record of a run whose ``config`` is as ``config.toml`` holds it (``None`` fields left
        out): RunConfig's declared defaults fill in the rest, so every run has every field."""
        return cls(path, {**DEFAULTS, **config}, summary)

    @property
    def point(self) -> tuple:
        """The configuration without its seed, as a hashable key."""
        return tuple(sorted((k, str(v)) for k, v in self.config.items() if k != "seed"))


def read_run(path: Path) -> RunRecord:
    """A run folder's ``config.toml`` and ``summary.json``.

    Raises:
        InputError: either file is missing or unreadable.
    """
    config = _read(path, "config.toml", tomllib.loads)
    summary = _read(path, "summary.json", json.loads)
    return RunRecord.of(path, config, summary)


def _read(folder: Path, name: str, loads) -> dict:
    try:
        return loads((folder / name).read_text())
    except FileNotFoundError:
        raise InputError(f"{folder}: not a complete run folder (no {name})") from None
    except (OSError, ValueError) as err:  # the file named: a sweep has many
        raise InputError(f"{folder / name}: cannot read: {err}") from None


def tuned_final(path: Path) -> Path:
    """``path``'s final runs if it is a tuning folder (``studies.tuning``), else ``path``.

    Raises:
        InputError: a tuning folder whose final runs are not done yet.
    """
    path = Path(path)
    if not (path / TUNE_FILE).is_file():
        return path
    if not (path / FINAL / "results.csv").is_file():
        raise InputError(f"{path}: a tuning whose final runs are not done; run the same tune command to finish it")
    return path / FINAL


def collect(paths: list[Path]) -> list[RunRecord]:
    """The runs in ``paths``: each a run folder, a sweep folder (its ``runs/``), a folder of run folders
    or a tuning folder (its final runs).

    Raises:
        InputError: a path holding no complete run.
    """
    records: dict[Path, RunRecord] = {}  # a run reached through two paths counts once
    for path in paths:
        path = tuned_final(path)
        if (path / "summary.json").exists():
            records.setdefault(path.resolve(), read_run(path))
            continue
        folder = path / "runs" if (path / "runs").is_dir() else path
        if not folder.is_dir():
            raise InputError(f"{path}: no such folder")
        found = [p for p in sorted(folder.iterdir()) if (p / "summary.json").exists()]
        if not found:
            raise InputError(f"{path}: holds no run (a folder with summary.json), nor a sweep's runs/")
        for p in found:
            records.setdefault(p.resolve(), read_run(p))
    return list(records.values())


def varying(records: list[RunRecord]) -> list[str]:
    """The configuration fields (but the seed) whose value differs between runs; ``strategy`` always."""
    names = ["strategy"]
    for f in fields(RunConfig):
        if f.name not in ("strategy", "seed") and len({str(r.config.get(f.name)) for r in records}) > 1:
            names.append(f.name)
    return names


def metric_names(records: list[RunRecord]) -> list[str]:
    """Numeric summary keys (booleans and configuration echoes excluded), in first-seen order."""
    echoes = NOT_METRICS | {f.name for f in fields(RunConfig)}
    names: list[str] = []
    for r in records:
        for key, value in r.summary.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in echoes and key not in names:
                names.append(key)
    return names


def interval(values: list[float], level: float = LEVEL) -> tuple[float, float, float, float]:
    """Mean, sample std and the Student-t interval of the mean; NaN where there are too few values."""
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def diverged(record: RunRecord) -> bool:
    """Did the run diverge? ``diverged`` is true (older runs: a string, the reason); null or false: no."""
    return bool(record.summary.get("diverged"))


def is_timing(key: str) -> bool:
    """Is ``key`` a number of the event simulation (which a diverged run keeps), not of training?"""
    return key in TIMING or key.startswith("gradients_")


def value_of(record: RunRecord, key: str) -> float | None:
    """A run's metric ``key`` as a finite float; None where the run has none (a target not reached)
    and for a training metric of a run that diverged."""
    value = record.summary.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return None if diverged(record) and not is_timing(key) else float(value)


def points(records: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    """The runs grouped by point, each group sorted by seed.

    Raises:
        InputError: two runs with the same configuration and seed (the same run twice).
    """
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.point, []).append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: r.config.get("seed", 0))
        for a, b in zip(runs, runs[1:], strict=False):
            if a.config.get("seed", 0) == b.config.get("seed", 0):
                raise InputError(f"{a.path} and {b.path}: the same configuration and seed; give each run once")
    return groups


def order(labels: list[str]):
    """A sort key for rows: by the labels' values, numbers numerically, then text."""

    def key(row: dict) -> tuple:
        cells = []
        for name in labels:
            value = row.get(name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append((0, float(value), "") if number else (1, 0.0, str(value)))
        return tuple(cells)

    return key


def aggregate(records: list[RunRecord], *, labels: list[str] | None = None) -> list[dict]:
    """One row per point, sorted by ``labels`` (default: the fields that vary): the labels, ``n_seeds``,
    ``diverged_runs`` (how many of them diverged: their training metrics are left out), ``seeds``
    and, for each metric M, ``M_mean``, ``M_std``, ``M_ci_low`` and ``M_ci_high`` (None when
    undefined). A metric missing in some runs (a target never reached) is averaged over the runs that
    have it, and a column ``M_n`` (in every row) says how many."""
    labels = varying(records) if labels is None else labels
    metrics = metric_names(records)
    rows = []
    for runs in points(records).values():
        row = {name: runs[0].config.get(name) for name in labels}
        row["n_seeds"] = len(runs)
        row["diverged_runs"] = sum(diverged(r) for r in runs)
        row["seeds"] = " ".join(str(r.config.get("seed", 0)) for r in runs)
        for m in metrics:
            values = [v for v in (value_of(r, m) for r in runs) if v is not None]
            stats = interval(values)
            for suffix, value in zip(("mean", "std", "ci_low", "ci_high"), stats, strict=True):
                row[f"{m}_{suffix}"] = None if math.isnan(value) else value
            row[f"{m}_n"] = len(values)
        rows.append(row)
    # M_n only for the metrics that some run lacks: there it is in every row, beside M_ci_high.
    complete = {m for m in metrics if all(row[f"{m}_n"] == row["n_seeds"] for row in rows)}
    for row in rows:
        for m in complete:
            del row[f"{m}_n"]
    return sorted(rows, key=order(labels))


def write_aggregate(rows: list[dict], path: Path) -> None:
    """``aggregate.csv`` (atomically; empty cells for undefined values)."""
    write_results(rows, path)
