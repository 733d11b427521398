"""Parameter sweeps: one run per combination, in local worker processes or on a Dask cluster, resumable.

Each run is a pure function of its configuration: it writes ``DIR/runs/NAME/`` (the usual
result files) and the sweep collects every run's summary into ``DIR/results.csv``. A run whose
folder holds every file it writes, each readable (``completeness.run_complete``), is complete
and is skipped, so an interrupted sweep resumes where it stopped; any other run is done again.
"""

from __future__ import annotations

import functools
import os
import shutil
import traceback
from concurrent.futures import as_completed
from pathlib import Path

from ..core.assemble import check, input_files
from ..core.config import RunConfig
from ..io import imports
from ..io.errors import InputError, RunsFailed, named
from ..io.progress import RunCounter
from ..io.results import check_out_place, write_results, write_text
from ..io.storage import FolderLock, recover_all
from ..training.runner import execute_and_write
from .aggregation import RunRecord, aggregate
from .completeness import read_summary, run_complete
from .dask_sweep import check_scheduler, connect, run_on_dask
from .grids import Grid, Union, digest, run_name, to_toml, varied
from .pool import stop, worker_pool


def _run(config: RunConfig, out: str) -> dict:
    return execute_and_write(config, Path(out), overwrite=True)


def _sweep(
    configs: list[RunConfig] | Grid,
    out: Path,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    counter: RunCounter | None = None,
    log=lambda message: None,
    extend: bool = False,
    overwrite: bool = False,
) -> list[dict]:
    """Run every configuration not already complete; write ``results.csv`` and ``aggregate.csv``;
    return all summaries (one per run of the folder, each with its ``run`` name).

    Args:
        configs: the runs, or a grid: the folder then records it (``grid.toml``), and a folder
            recording another grid is refused unless ``extend`` (add this grid's runs; the
            results cover every grid of the folder) or ``overwrite`` (start again).
        jobs: local worker processes (default: the CPU count).
        scheduler: run on a Dask cluster instead: ``tcp://HOST:PORT`` or ``local:K``.
        counter: a live count of finished, running and failed runs.
        log: receives one-line messages (what is to do, where it runs).

    Raises:
        InputError: bad options, or a folder that holds another sweep.
        RunsFailed: some runs raised; the others are written, and running the sweep again
            retries only the failed ones. Tracebacks are in ``DIR/failures.txt``.
    """
    if out.exists() and not out.is_dir():  # (run_sweep checked the place before taking the lock)
        raise InputError(f"{named('out')} {out}: exists and is not a directory")
    record = _plan(configs, out, extend=extend, overwrite=overwrite) if isinstance(configs, Grid) else None
    configs = record.configs() if record is not None else configs
    for config in configs:
        check(config)  # every input error before any run starts
        check_out_place(out, input_files(config))
    if jobs is not None and jobs < 1:
        raise InputError(f"{named('jobs')} {jobs}: must be at least 1")
    if scheduler is not None:
        if jobs is not None:
            raise InputError(
                f"{named('jobs')}: local processes only; with {named('scheduler')} the cluster's workers run the sweep"
            )
        check_scheduler(scheduler)
    away = "Dask workers" if scheduler is not None else "worker processes"
    if scheduler is not None or min(jobs or os.cpu_count() or 1, len(configs)) > 1:
        for config in configs:
            imports.check_sendable(config, away)  # an object of this process: an import path, or jobs=1
    runs = out / "runs"
    if record is not None:
        if overwrite:
            clear_entries(out)
        runs.mkdir(parents=True, exist_ok=True)
        write_text(out / GRID_FILE, to_toml(record.to_tables(), RECORD_HEADER))
    runs.mkdir(parents=True, exist_ok=True)
    recover_all(runs)  # runs killed mid-write: their temporaries (another live process's are kept)
    names = _names(configs, runs)
    todo = _todo(configs, names, runs, log)
    counter = counter or RunCounter(quiet=True)
    if len(todo) < len(configs):
        log(f"{len(configs) - len(todo)} of {len(configs)} runs are complete already; {len(todo)} to run")
    failures: list[tuple[str, str]] = []
    if todo and scheduler is not None:
        with connect(scheduler, log=log) as client:
            counter.start(len(todo))
            failures = run_on_dask(todo, client, counter, log)
    else:
        counter.start(len(todo))
        if todo:
            failures = _run_local(todo, jobs or os.cpu_count() or 1, counter)
    counter.close()
    report = out / "failures.txt"
    if failures:
        write_text(report, "".join(f"== {name}\n{error}\n\n" for name, error in failures))
        first = failures[0][1].splitlines()[-1]
        raise RunsFailed(
            f"{len(failures)} of {len(todo)} runs failed, e.g. {failures[0][0]}: {first} "
            f"(tracebacks in {report}; the other runs are kept, and the same command retries the failed ones)"
        )
    report.unlink(missing_ok=True)
    return _write_tables(configs, names, out)


@functools.wraps(_sweep)
def run_sweep(configs: list[RunConfig] | Grid, out: Path, **options) -> list[dict]:
    check_out_place(out)
    with FolderLock(out):  # one sweep writes a folder at a time, from start to end
        return _sweep(configs, out, **options)


GRID_FILE = "grid.toml"
RECORD_HEADER = "# the grids whose runs this sweep folder holds (stragglersim sweep --grid reads this file)\n"
SWEEP_ENTRIES = ("runs", "results.csv", "aggregate.csv", "failures.txt", GRID_FILE)


def _plan(grid: Grid, out: Path, *, extend: bool, overwrite: bool) -> Union:
    """The grids the folder will record: this one, or the recorded ones (with this one when extending).

    Raises:
        InputError: the folder holds another sweep (or something else) and neither flag says what to do.
    """
    if extend and overwrite:
        raise InputError(f"{named('extend')} adds runs to the sweep, {named('overwrite')} starts it again: give one")
    new = grid.configs()  # checks the grid before the folder is looked at
    recorded = out / GRID_FILE
    if overwrite or not (out.is_dir() and any(out.iterdir())):
        return Union([grid])
    if not recorded.exists():
        if extend:
            return Union([grid])
        raise InputError(
            f"{named('out')} {out}: not empty and records no sweep "
            f"grid; pass {named('overwrite')} or another {named('out')}"
        )
    before = Grid.load(recorded, what="the sweep's record ")
    keys, held = {digest(c) for c in new}, {digest(c) for c in before.configs()}
    if keys == held or any(keys == {digest(c) for c in g.configs()} for g in before.grids):
        return before  # the same sweep again: resume it
    if extend:
        return Union([*before.grids, grid])
    raise InputError(
        f"{named('out')} {out}: holds a sweep of another grid ({out / GRID_FILE}: {len(held)} runs; this grid: "
        f"{len(new)} runs, {len(keys & held)} of them in the folder); pass --extend to add this grid's runs, "
        f"{named('overwrite')} to start again, or another {named('out')}"
    )


def clear_entries(out: Path, names=SWEEP_ENTRIES) -> None:
    """Remove the files and folders ``names`` (default: what a sweep writes) from ``out``, and nothing else."""
    for name in names:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _names(configs: list[RunConfig], runs: Path) -> list[str]:
    """Each run's folder name; a run already in the folder (found by its digest) keeps its name."""
    tags = varied(configs)
    existing = {p.name.rsplit("-", 1)[-1]: p.name for p in runs.iterdir() if not p.name.startswith(".")}
    return [existing.get(digest(c)) or run_name(c, tags) for c in configs]


def _todo(configs: list[RunConfig], names: list[str], runs: Path, log) -> list[tuple[RunConfig, Path]]:
    """The runs whose folder is not complete (``run_complete``). An incomplete folder is removed
    and its run done again; ``log`` names it and says why."""
    todo = []
    for config, name in zip(configs, names, strict=True):
        path = runs / name
        reason = run_complete(path, config)
        if reason is None:
            _same_sources(config, path)
            continue
        if path.is_dir() and not path.is_symlink():
            log(f"run {name}: {reason}; running it again")
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            log(f"run {name}: {reason}; running it again")
            path.unlink()
        todo.append((config, path))
    return todo


def _same_sources(config: RunConfig, path: Path) -> None:
    """Refuse to resume a sweep whose complete run ``path`` was made with other source files."""
    if any(imports.is_import_path(getattr(config, field)) for field in imports.COMPONENTS):
        recorded = RunConfig.load(path / "config.toml").sources
        if recorded:
            imports.check_sources(config, recorded, imports.sources_of(config), f"{path} was written")


def _write_tables(configs: list[RunConfig], names: list[str], out: Path) -> list[dict]:
    """``results.csv`` (one row per run: its name, the fields the grid varies, its summary) and
    ``aggregate.csv`` (one row per configuration over seeds); returns the rows of results.csv."""
    tags = varied(configs)
    rows, records = [], []
    for config, name in zip(configs, names, strict=True):
        summary = read_summary(out / "runs" / name)
        axes = {t: getattr(config, t) for t in tags if t not in summary}
        rows.append({"run": name, **axes, **summary})
        records.append(RunRecord.of(out / "runs" / name, config.to_dict(), summary))
    write_results(rows, out / "results.csv")
    write_results(aggregate(records, labels=["strategy", *(t for t in tags if t != "strategy")]), out / "aggregate.csv")
    return rows


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
    pool = worker_pool(jobs)
    try:
        failures = _collect(pool, todo, jobs, counter, failures)
    except BaseException:  # ^C, SIGTERM: queued runs never start, running ones end now
        stop(pool)
        recover_all(todo[0][1].parent)  # what the workers cut short in the middle of writing a run left
        raise
    pool.shutdown()
    return failures


def _collect(pool, todo, jobs: int, counter: RunCounter, failures: list) -> list[tuple[str, str]]:
    """Submit every run to ``pool``; count them as they finish; return the failures."""
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
