"""Parameter sweeps: one run per combination, in local worker processes or on a Dask cluster, resumable.

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
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from .assemble import check
from .config import RunConfig
from .errors import InputError, RunsFailed
from .progress import RunCounter
from .results import read_csv
from .strategies import get


def run_name(config: RunConfig) -> str:
    """A folder name that identifies a run: its main parameters, readable, and a hash of the
    whole configuration, so that runs differing in anything else never share a folder."""
    name = get(config.strategy).run_name(config)
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


def parse_int_list(text: str, option: str) -> list[int]:
    """``0,1,2`` or ``0-8`` (inclusive) or a mix: ``0-3,6``."""
    values: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, dash, hi = part.partition("-")
            values.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError:
        raise InputError(f"{option} {text!r}: expected integers like 0,1,2 or a range 0-8") from None
    if not values:
        raise InputError(f"{option} {text!r}: no values")
    return values


def configs_from_options(options: dict, *, total_workers: int | None = None) -> list[RunConfig]:
    """The sweep's runs from command-line style options: ``strategy`` a comma list, ``workers``,
    ``backups`` and ``seed`` lists or ranges (``0-3,6``), every other RunConfig field one value."""
    strategies = [s.strip() for s in str(options["strategy"]).split(",") if s.strip()]
    if not strategies:
        raise InputError(f"--strategy {options['strategy']!r}: no strategies")
    lists = {
        "strategies": strategies,
        "workers": parse_int_list(str(options["workers"]), "--workers"),
        "backups": parse_int_list(str(options["backups"]), "--backups"),
        "seeds": parse_int_list(str(options["seed"]), "--seeds"),
    }
    fields = RunConfig.__dataclass_fields__
    shared = {name: value for name, value in options.items() if name in fields}
    return grid_of(shared, **lists, total_workers=total_workers, flag=lambda name: "--" + name.replace("_", "-"))


def grid_of(options: dict, *, strategies, workers, backups, seeds, total_workers=None, flag=str) -> list[RunConfig]:
    """Every combination (``grid``) over a base run of the shared RunConfig ``options``; ``flag``
    names an option in messages (the command line's ``--total-workers``, the API's ``total_workers``).

    Raises:
        InputError: ``total_workers`` below a number of workers, or an empty grid.
    """
    values = {**options, "strategy": strategies[0], "workers": workers[0], "backups": 0, "seed": seeds[0]}
    base = RunConfig(**values)  # the rest: defaults
    if total_workers is not None and min(workers) > total_workers:
        raise InputError(f"{flag('total_workers')} {total_workers}: smaller than {flag('workers')}")
    configs = grid(
        base, strategies=strategies, workers=workers, backups=backups, seeds=seeds, total_workers=total_workers
    )
    if not configs:
        raise InputError(f"the sweep is empty: only {flag('strategy')} backup takes {flag('backups')} > 0")
    return configs


def _run(config: RunConfig, out: str) -> dict:
    from .runner import execute_and_write

    return execute_and_write(config, Path(out), overwrite=True)


def run_sweep(
    configs: list[RunConfig],
    out: Path,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    counter: RunCounter | None = None,
    log=lambda message: None,
) -> list[dict]:
    """Run every configuration not already complete; write ``results.csv``; return all summaries.

    Args:
        jobs: local worker processes (default: the CPU count).
        scheduler: run on a Dask cluster instead: ``tcp://HOST:PORT`` or ``local:K``.
        counter: a live count of finished, running and failed runs.
        log: receives one-line messages (what is to do, where it runs).

    Raises:
        RunsFailed: some runs raised; the others are written, and running the sweep again
            retries only the failed ones. Tracebacks are in ``DIR/failures.txt``.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    for config in configs:
        check(config)  # every input error before any run starts
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs {jobs}: must be at least 1")
    if scheduler is not None:
        from .dask_sweep import check_scheduler

        if jobs is not None:
            raise InputError("--jobs: local processes only; with --scheduler the cluster's workers run the sweep")
        check_scheduler(scheduler)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for leftover in runs.glob(".*.tmp-*"):  # a run killed mid-write: incomplete, never renamed
        shutil.rmtree(leftover, ignore_errors=True)
    todo = [(c, runs / run_name(c)) for c in configs if not (runs / run_name(c) / "summary.json").exists()]
    counter = counter or RunCounter(quiet=True)
    if len(todo) < len(configs):
        log(f"{len(configs) - len(todo)} of {len(configs)} runs are complete already; {len(todo)} to run")
    failures: list[tuple[str, str]] = []
    if todo and scheduler is not None:
        from .dask_sweep import connect, run_on_dask

        with connect(scheduler, log=log) as client:
            counter.start(len(todo))
            failures = run_on_dask(todo, client, counter)
    else:
        counter.start(len(todo))
        if todo:
            failures = _run_local(todo, jobs or os.cpu_count() or 1, counter)
    counter.close()
    report = out / "failures.txt"
    if failures:
        report.write_text("".join(f"== {name}\n{error}\n\n" for name, error in failures))
        first = failures[0][1].splitlines()[-1]
        raise RunsFailed(
            f"{len(failures)} of {len(todo)} runs failed, e.g. {failures[0][0]}: {first} "
            f"(tracebacks in {report}; the other runs are kept, and the same command retries the failed ones)"
        )
    report.unlink(missing_ok=True)
    summaries = [{"run": run_name(c), **json.loads((runs / run_name(c) / "summary.json").read_text())} for c in configs]
    write_results(summaries, out / "results.csv")
    return summaries


def _run_local(todo: list[tuple[RunConfig, Path]], jobs: int, counter: RunCounter) -> list[tuple[str, str]]:
    """Run in this process (one job) or in a pool of spawned processes; return the failures."""
    failures = []
    jobs = max(1, min(jobs, len(todo)))
    if jobs == 1:
        for config, path in todo:
            counter.update(running=1)
            try:
                _run(config, str(path))
            except Exception as err:
                failures.append((path.name, _traceback(err)))
                counter.update(failed=1, running=0)
            else:
                counter.update(finished=1, running=0)
        return failures
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run, config, str(path)): path for config, path in todo}
        left = len(futures)
        counter.update(running=min(jobs, left))
        for future in as_completed(futures):
            left -= 1
            if future.exception() is not None:
                failures.append((futures[future].name, _traceback(future.exception())))
                counter.update(failed=1, running=min(jobs, left))
            else:
                counter.update(finished=1, running=min(jobs, left))
    return failures


def _traceback(err: BaseException) -> str:
    """The error with its traceback (a pool's error carries the worker's traceback as its cause)."""
    return "".join(traceback.format_exception(err)).rstrip()


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
