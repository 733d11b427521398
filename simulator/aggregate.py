"""Seeds aggregated honestly: one row per configuration, Student-t intervals across seeds.

A *point* is a configuration without its seed. Runs of one point differ only in their random
draws, so the spread of a metric over them is the run-to-run variability a reader must see;
the interval is ``mean ± t_{0.975, n-1} · std / sqrt(n)`` with the sample std (``ddof=1``).
With one seed there is no spread to estimate: std and interval are left empty, never faked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

from .config import RunConfig
from .errors import InputError

NOT_METRICS = {"seed", "workers", "backups", "total_workers", "staleness_cutoff", "version"}
LEVEL = 0.95


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its folder, configuration and summary."""

    path: Path
    config: dict
    summary: dict

    @property
    def point(self) -> tuple:
        """The configuration without its seed, as a hashable key."""
        return tuple(sorted((k, str(v)) for k, v in self.config.items() if k != "seed"))


def read_run(path: Path) -> RunRecord:
    """A run folder's ``config.toml`` and ``summary.json``.

    Raises:
        InputError: either file is missing or unreadable.
    """
    import tomllib

    try:
        config = tomllib.loads((path / "config.toml").read_text())
        summary = json.loads((path / "summary.json").read_text())
    except FileNotFoundError as err:
        raise InputError(f"{path}: not a complete run folder (no {Path(err.filename).name})") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the run: {err}") from None
    defaults = {f.name: f.default for f in fields(RunConfig)}
    return RunRecord(path, {**{k: v for k, v in defaults.items() if v is not None}, **config}, summary)


def collect(paths: list[Path]) -> list[RunRecord]:
    """The runs in ``paths``: each a run folder, a sweep folder (its ``runs/``) or a folder of run folders.

    Raises:
        InputError: a path holding no complete run.
    """
    records = []
    for path in paths:
        path = Path(path)
        if (path / "summary.json").exists():
            records.append(read_run(path))
            continue
        folder = path / "runs" if (path / "runs").is_dir() else path
        if not folder.is_dir():
            raise InputError(f"{path}: no such folder")
        found = [read_run(p) for p in sorted(folder.iterdir()) if (p / "summary.json").exists()]
        if not found:
            raise InputError(f"{path}: holds no run (a folder with summary.json), nor a sweep's runs/")
        records += found
    return records


def varying(records: list[RunRecord]) -> list[str]:
    """The configuration fields (but the seed) whose value differs between runs; ``strategy`` always."""
    names = ["strategy"]
    for f in fields(RunConfig):
        if f.name not in ("strategy", "seed") and len({str(r.config.get(f.name)) for r in records}) > 1:
            names.append(f.name)
    return names


def metric_names(records: list[RunRecord]) -> list[str]:
    """Numeric summary keys (booleans and configuration echoes excluded), in first-seen order."""
    names: list[str] = []
    for r in records:
        for key, value in r.summary.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in NOT_METRICS and key not in names:
                names.append(key)
    return names


def interval(values: list[float], level: float = LEVEL) -> tuple[float, float, float, float]:
    """Mean, sample std and the Student-t interval of the mean; NaN where there are too few values."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _value(summary: dict, key: str) -> float | None:
    value = summary.get(key)
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def aggregate(records: list[RunRecord], *, labels: list[str] | None = None) -> list[dict]:
    """One row per point: its ``labels`` (default: the fields that vary), ``n_seeds``, ``seeds`` and,
    for each metric M, ``M_mean``, ``M_std``, ``M_ci_low`` and ``M_ci_high`` (None when undefined).
    A metric missing in some seeds' runs (a target never reached) is averaged over the runs that have it,
    and ``M_n`` says how many."""
    labels = varying(records) if labels is None else labels
    metrics = metric_names(records)
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.point, []).append(r)
    rows = []
    for runs in groups.values():
        runs.sort(key=lambda r: r.config.get("seed", 0))
        row = {name: runs[0].config.get(name) for name in labels}
        row["n_seeds"] = len(runs)
        row["seeds"] = " ".join(str(r.config.get("seed", 0)) for r in runs)
        for m in metrics:
            values = [v for v in (_value(r.summary, m) for r in runs) if v is not None]
            stats = interval(values)
            for suffix, value in zip(("mean", "std", "ci_low", "ci_high"), stats, strict=True):
                row[f"{m}_{suffix}"] = None if math.isnan(value) else value
            if len(values) != len(runs):
                row[f"{m}_n"] = len(values)
        rows.append(row)
    return rows


def write_aggregate(rows: list[dict], path: Path) -> None:
    """``aggregate.csv`` (atomically; empty cells for undefined values)."""
    from .sweeps import write_results

    write_results(rows, path)
