"""Parameter sweeps: one run per combination, in parallel worker processes, resumable.

Each run is a pure function of its configuration: it writes ``DIR/runs/NAME/`` (the usual
result files) and the sweep collects every run's summary into ``DIR/results.csv``. A run
whose folder already holds a ``summary.json`` is complete and is skipped, so an interrupted
sweep resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from simulator.config import RunConfig
from simulator.results import read_csv


def run_name(config: RunConfig) -> str:
    """A folder name that identifies a run: its main parameters, readable, and a hash of the
    whole configuration, so that runs differing in anything else never share a folder."""
    name = config.strategy + (f"-{config.semantics}" if config.semantics else "")
    name += f"-N{config.workers}-B{config.backups}"
    for field, tag in (
        ("k", "K"),
        ("softsync_n", "n"),
        ("ssp_bound", "s"),
        ("deadline", "T"),
        ("staleness_cutoff", "cut"),
    ):
        value = getattr(config, field)
        if value is not None:
            name += f"-{tag}{value:g}"
    digest = hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name}-seed{config.seed}-{digest}"


def grid(base: RunConfig, *, strategies, workers, backups, seeds, total_workers=None) -> list[RunConfig]:
    """Every combination; with ``total_workers`` P, B = P - N (and ``backups`` is ignored)."""
    configs = []
    for strategy, n, seed in itertools.product(strategies, workers, seeds):
        bs = [total_workers - n] if total_workers is not None else backups
        for b in bs:
            if strategy != "backup" and b != 0:
                continue  # only backup has backup workers
            semantics = base.semantics if strategy == "backup" else None
            configs.append(replace(base, strategy=strategy, workers=n, backups=b, seed=seed, semantics=semantics))
    return configs


def _run(config: RunConfig, out: str) -> dict:
    from simulator.runner import execute_and_write

    return execute_and_write(config, Path(out), overwrite=True)


def run_sweep(configs: list[RunConfig], out: Path, *, jobs: int | None = None, progress=None) -> list[dict]:
    """Run every configuration not already complete; write ``results.csv``; return all summaries."""
    for config in configs:
        config.validate()  # every input error before any run starts
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for leftover in runs.glob(".*.tmp-*"):  # a run killed mid-write: incomplete, never renamed
        shutil.rmtree(leftover, ignore_errors=True)
    todo = [(c, runs / run_name(c)) for c in configs if not (runs / run_name(c) / "summary.json").exists()]
    if todo:
        jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
        if jobs == 1:
            for config, path in todo:
                _run(config, str(path))
                if progress:
                    progress.update(1)
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_run, config, str(path)) for config, path in todo]
                for future in as_completed(futures):
                    future.result()
                    if progress:
                        progress.update(1)
    summaries = [{"run": run_name(c), **json.loads((runs / run_name(c) / "summary.json").read_text())} for c in configs]
    write_results(summaries, out / "results.csv")
    return summaries


def write_results(summaries: list[dict], path: Path) -> None:
    """One row per run, the summary fields as columns (atomically)."""
    columns: list[str] = []
    for s in summaries:
        columns += [k for k in s if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow({k: ("" if v is None else v) for k, v in s.items()})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue())
    tmp.replace(path)


read_results = read_csv  # a sweep's results.csv
