"""The Python API: simulate, sweep, predict and load runs from a notebook or a script::

    import stragglersim

    run = stragglersim.simulate(strategy="backup", workers=8, backups=2, steps=200, timing_only=True)
    run.summary["mean_iteration_time"], run.updates["iteration_time"].median()

Option names are the command line's long options with underscores (``--log-gradients`` is
``log_gradients``): the fields of :class:`~stragglersim.core.config.RunConfig`, with the same defaults.
Every result is what the command line writes: ``run.summary`` is ``summary.json`` and
``run.updates`` is ``updates.csv`` read with pandas, value for value.

Importing the package stays light: the engine (SimPy), JAX and pandas load when first needed.
"""

from __future__ import annotations

import difflib
import io
import json
import warnings
from dataclasses import fields
from pathlib import Path

from .io.errors import InputError
from .io.imports import COMPONENTS, option_value
from .io.progress import NULL_PROGRESS, RunCounter, progress_bar
from .io.records import Gradient, Update
from .io.version import __version__

# A run's tables. Each is kept as (CSV header, function giving its lines) until asked for, so a run
# pays for pandas only when a table is used, and a DataFrame is parsed from the file's very text.
TABLES = ("updates.csv", "gradients.csv", "metrics.csv", "training.csv")


class Run:
    """One run's results: what ``stragglersim simulate --out DIR`` writes to ``DIR``.

    Attributes:
        config: the resolved :class:`~stragglersim.core.config.RunConfig` (``config.toml``).
        summary: the headline numbers, exactly the dict of ``summary.json`` (with ``version``).
        params: with training, the final parameters (a pytree of arrays); None otherwise and for
            runs read back with :func:`load_run`.
    """

    def __init__(self, config, summary: dict, tables: dict, params=None):
        self.config, self.summary, self.params = config, summary, params
        self._tables = tables  # {file name: (header, lines function)}
        self._frames: dict = {}

    @property
    def updates(self):
        """One row per update (``updates.csv``), a pandas DataFrame; times in simulated seconds."""
        return self._frame("updates.csv")

    @property
    def gradients(self):
        """One row per gradient computation (``gradients.csv``), a pandas DataFrame; None when the
        run was made with ``log_gradients="none"`` (it keeps no per-gradient records)."""
        return self._frame("gradients.csv")

    @property
    def metrics(self):
        """Training: the evaluations (``metrics.csv``), a pandas DataFrame; None for timing-only runs."""
        return self._frame("metrics.csv")

    @property
    def training(self):
        """Training: one row per update (``training.csv``), a pandas DataFrame; None for timing-only runs."""
        return self._frame("training.csv")

    def save(self, out, *, overwrite: bool = False) -> Path:
        """Write the run's files to the folder ``out``, as ``stragglersim simulate --out`` does
        (all at once: a failure leaves nothing half-written); returns ``out`` as a Path.

        Raises:
            InputError: ``out`` is a file, or holds something and ``overwrite`` is off.
        """
        from .io.results import write_run  # here, not at import: the command line starts without io.results (13 ms)

        out = Path(out)
        extra = {name: (header, lines()) for name, (header, lines) in self._tables.items() if name in TABLES[2:]}
        write_run(out, self.config, _Lines(self._tables), self.summary, tables=extra, overwrite=overwrite)
        return out

    def _frame(self, name: str):
        if name not in self._tables:
            return None
        if name not in self._frames:
            import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

            header, lines = self._tables[name]
            # Parsed from the very text the CSV file holds, so it equals the file read with pandas.
            self._frames[name] = pd.read_csv(io.StringIO(",".join(header) + "\n" + "".join(lines())))
        return self._frames[name]

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Run {s['strategy']} N={s['workers']} B={s['backups']}: {s['updates']} updates, "
            f"{s['sim_time']:.6g} s simulated>"
        )


class _Lines:
    """What ``write_run`` reads from an event log: the lines of updates.csv and gradients.csv."""

    def __init__(self, tables: dict):
        self.tables = tables

    def update_lines(self):
        return self.tables["updates.csv"][1]()

    def gradient_lines(self):
        return self.tables["gradients.csv"][1]()


def simulate(*, progress: bool = False, **options) -> Run:
    """Simulate one run, training unless ``timing_only=True``; the ``stragglersim simulate`` of Python.

    Args:
        progress: show a progress bar on a terminal.
        **options: the fields of ``RunConfig`` (the CLI's long options with underscores), e.g.
            ``strategy="backup", workers=8, backups=2, latency="exponential:rate=1", steps=200``.

    Returns:
        A :class:`Run`. A run that stalled or diverged is returned too: its ``summary`` says so
        (``stalled``, ``diverged``), where the command line exits with status 1.

    Raises:
        InputError: an unknown option, or a bad value (one line naming it).
    """
    # here, not at import: import stragglersim loads no SimPy (via the strategies)
    from .core.config import RunConfig, budget_default
    from .training.runner import execute  # here, not at import: import stragglersim loads no NumPy, SciPy or SimPy

    config = RunConfig(**budget_default(_run_options(options, "simulate"))).validate()
    if config.checkpoint_every:
        raise InputError("checkpoint_every: simulate() keeps no checkpoints; use `stragglersim simulate --out DIR`")
    bar = (
        progress_bar(config.steps, desc=f"{config.strategy} N={config.workers} B={config.backups}")
        if progress
        else NULL_PROGRESS
    )
    try:
        result = execute(config, progress=bar)
    finally:
        bar.close()
    summary = json.loads(json.dumps({**result.summary, "version": __version__}))  # as summary.json reads back
    log = result.log
    tables = {"updates.csv": (Update.FIELDS, log.update_lines)}
    if result.config.log_gradients == "all":
        tables["gradients.csv"] = (Gradient.FIELDS, log.gradient_lines)
    for name, (header, lines) in result.tables.items():
        tables[name] = (tuple(header), (lambda rows: lambda: rows)(list(lines)))
    return Run(result.config, summary, tables, result.params)


def load_run(directory) -> Run:
    """A run read back from the folder that ``stragglersim simulate --out`` or :meth:`Run.save` wrote.

    Raises:
        InputError: ``directory`` is not such a folder.
    """
    from .core.config import RunConfig  # here, not at import: import stragglersim loads no SimPy (via the strategies)

    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: no such run folder")
    if not (d / "summary.json").is_file() or not (d / "config.toml").is_file():
        hint = " (a sweep folder: its runs are in runs/)" if (d / "results.csv").is_file() else ""
        raise InputError(f"{d}: not a run folder (no summary.json and config.toml){hint}")
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{d / 'summary.json'}: cannot read: {err}") from None
    config = RunConfig.load(d / "config.toml")
    needed = ["updates.csv"] + (["gradients.csv"] if config.log_gradients == "all" else [])
    missing = [name for name in needed if not (d / name).is_file()]
    if missing:
        raise InputError(f"{d}: not a complete run folder (no {missing[0]})")
    tables = {name: _file_table(d / name) for name in TABLES if (d / name).is_file()}
    return Run(config, summary, tables)


def sweep(
    out, *, seeds=None, total_workers=None, grid=None, extend=False, overwrite=False, jobs=None, scheduler=None,
    progress=False, **options
):  # fmt: skip
    """One run per combination of a grid, like ``stragglersim sweep``; returns ``results.csv`` as a DataFrame.

    Each run is written to ``out/runs/NAME/``; runs already complete there are skipped, so
    calling it again resumes an interrupted sweep; ``out/aggregate.csv`` holds the means over
    seeds with their 95% Student-t intervals. The runs go to new worker processes (spawned):
    in a script, call it under ``if __name__ == "__main__":`` (a notebook needs nothing), or pass
    ``jobs=1`` to run them in this process.

    Args:
        out: the sweep folder.
        seeds, **options: ``RunConfig`` fields, each a value or a list of values (an axis of the
            grid); every combination runs (``backups`` > 0 for ``backup`` only, an option for
            the strategies that take it).
        total_workers: hold N + B at P (a value or a list): with ``backups`` N = P - B, with
            ``workers`` B = P - N.
        grid: a TOML grid file (as ``sweep --grid``); the keywords given win over its keys.
        extend, overwrite: for a folder holding another grid: add this grid's runs, or start again.
        jobs: local worker processes (default: the CPU count); scheduler: a Dask cluster instead,
            ``tcp://HOST:PORT`` or ``local:K``.
        progress: report finished and running runs on stderr.

    Raises:
        InputError: bad options, an empty grid, or a folder of another grid.
        RunsFailed: some runs raised (see ``out/failures.txt``).
    """
    import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

    from .studies.sweeps import run_sweep  # here, not at import: import stragglersim loads no NumPy, SciPy or SimPy

    new, out = _grid("sweep", options, seeds, total_workers, grid), Path(out)
    counter = RunCounter(quiet=not progress)
    try:
        run_sweep(new, out, jobs=jobs, scheduler=scheduler, counter=counter, extend=extend, overwrite=overwrite)
    finally:
        counter.close()
    return pd.read_csv(out / "results.csv")


def tune(
    out, *, tune, select_by="accuracy_at_budget", validation_split=0.1, seeds=None, total_workers=None, grid=None,
    overwrite=False, jobs=None, scheduler=None, progress=False, **options
):  # fmt: skip
    """Each configuration's best candidate of ``tune``, as ``stragglersim tune``; returns ``tuned.csv``, a DataFrame.

    The grid (``seeds``, ``**options`` and the rest as for :func:`sweep`) runs every candidate of ``tune`` (option
    -> values, crossed: ``{"lr": [0.01, 0.1]}``) on every seed on all but ``validation_split`` of the training set,
    evaluated on the rest (``out/candidates``); each configuration's best mean over seeds of ``select_by``
    (``time_to_target``, ``accuracy_at_budget``, ``loss_at_budget``) runs again on the test set (``out/final``).
    A winner at the edge of its candidates warns (``UserWarning``: widen the grid).

    Raises:
        InputError: bad options (before anything is written). RunsFailed: some runs raised.
    """
    import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

    from .studies import tuning  # here, not at import: import stragglersim loads no NumPy, SciPy or SimPy

    chosen = tuning.Tuning.from_mapping(tune, select_by, validation_split)
    new, out = _grid("tune", options, seeds, total_workers, grid), Path(out)
    tuning.tune(new, out, chosen, jobs=jobs, scheduler=scheduler, quiet=not progress, warn=_warn, overwrite=overwrite)
    return pd.read_csv(out / tuning.TABLE)


def _warn(line: str) -> None:
    warnings.warn(line, UserWarning, stacklevel=4)  # at the caller of tune()


def _grid(what: str, options: dict, seeds, total_workers, grid):
    """The grid of the API's keywords (each a value or a list), over the file ``grid`` if given."""
    from .studies.grids import Grid  # here, not at import: import stragglersim loads no SimPy (via core.config)

    if "seed" in options:
        raise InputError(f"{what}: give seeds=[...] (a list, as the CLI's --seeds), not seed")
    _run_options({name: None for name in options}, what)  # names that are not options
    table = {name: [_plain(v, _declared(name), name) for v in _as_list(value)] for name, value in options.items()}
    if seeds is not None:
        table["seed"] = _as_list(seeds)
    if total_workers is not None:
        table["total_workers"] = _as_list(total_workers)
    new = Grid.from_mapping(table, source=what)
    return new if grid is None else Grid.load(Path(grid)).merged(new)


def _declared(name: str) -> str:
    from .core.config import RunConfig  # here, not at import: import stragglersim loads no SimPy (via the strategies)

    return str(RunConfig.__dataclass_fields__[name].type)


def predict(latency: str, workers: int, backups=(0,), trace_format: str = "csv", time_scale: float = 1.0):
    """Predicted iteration time of N of N+B with cancellation: E and std of the order statistic
    X_{N:N+B}, for each B; the ``stragglersim predict`` of Python.

    Args:
        latency: a latency SPEC (seconds), e.g. ``"exponential:rate=1"``; a ``trace:`` or
            ``empirical:`` file is read with ``trace_format`` and ``time_scale`` (seconds per unit).
        workers: N. backups: a B or a list of them.

    Returns:
        A pandas DataFrame, one row per B (the keys of ``theory.predict_backups``).
    """
    import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

    from .studies.reports import predict as predicted  # here, not at import: import stragglersim loads no SciPy

    bs = list(dict.fromkeys(_as_list(backups)))  # each B once, in order
    workers = _python(workers)
    if not bs or isinstance(workers, bool) or not isinstance(workers, int) or workers < 1 or min(bs) < 0:
        raise InputError("predict: workers must be an integer >= 1 and backups >= 0")
    return pd.DataFrame(predicted(latency, workers, bs, trace_format=trace_format, time_scale=time_scale).data)


def aggregate(*paths):
    """Runs aggregated over seeds, like ``stragglersim aggregate`` (without writing a file).

    Args:
        *paths: run folders, sweep folders (their ``runs/``), folders of run folders or tunings (their ``final/``).

    Returns:
        A pandas DataFrame, one row per configuration without its seed (``aggregate.csv``): the
        varying options, ``n_seeds``, ``seeds`` and, per metric M, ``M_mean``, ``M_std``, ``M_ci_low``,
        ``M_ci_high`` (95% Student-t; NaN with one seed) and, where some runs lack M, ``M_n``.
    """
    import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

    from .studies.aggregation import aggregate as rows_of  # here, not at import: import stragglersim loads no SciPy
    from .studies.aggregation import collect  # here, not at import: import stragglersim loads no SciPy

    return pd.DataFrame(rows_of(collect(_paths(paths, "aggregate"))))


def compare(*paths, baseline=None, metrics=None):
    """Every configuration against a baseline, paired by seed, like ``stragglersim compare``.

    Args:
        *paths: run folders, sweep folders, folders of run folders or tuning folders (their final runs).
        baseline: the baseline configuration, ``"backups=0"`` or ``{"semantics": "tf", "backups": 0}``;
            it must match exactly one configuration (default: the first in sorted order).
        metrics: summary keys (default: the headline throughput and accuracy metrics present).

    Returns:
        A pandas DataFrame (``compare.csv``), one row per configuration and metric: ``mean``,
        ``baseline_mean``, ``n_pairs``, ``diff`` (mean over common seeds of config - baseline),
        ``diff_std``, ``diff_ci_low``, ``diff_ci_high``, ``ratio`` and ``note``.
    """
    import pandas as pd  # here, not at import: import stragglersim loads no pandas (0.8 s)

    from .studies.aggregation import collect  # here, not at import: import stragglersim loads no SciPy
    from .studies.comparison import paired  # here, not at import: import stragglersim loads no SciPy

    metrics = [metrics] if isinstance(metrics, str) else metrics
    rows, _ = paired(collect(_paths(paths, "compare")), baseline=baseline, metrics=metrics)
    return pd.DataFrame(rows)


def _paths(paths: tuple, what: str) -> list[Path]:
    if not paths:
        raise InputError(f"{what}: give at least one run or sweep folder")
    return [Path(p) for p in paths]


def _run_options(options: dict, what: str) -> dict:
    """``options`` if every name is a RunConfig field; else an error naming the first that is not."""
    from .core.config import RunConfig  # here, not at import: import stragglersim loads no SimPy (via the strategies)

    declared = {f.name: str(f.type) for f in fields(RunConfig)}
    for name in options:
        if name not in declared:
            near = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else " (the options are RunConfig's fields)"
            raise InputError(f"{what}: unknown option {name!r}{hint}")
    return {name: _plain(value, declared[name], name) for name, value in options.items()}


def _plain(value, declared: str, name: str = ""):
    """A Python value as the command line would give it: NumPy scalars become Python numbers, a
    number for a text option (``eval_every=50``) its text, and the user's own model, dataset or
    optimizer (an object) its import path, or its token in this process (``io.imports``)."""
    if name in COMPONENTS:
        return option_value(value, name)
    value = _python(value)
    if declared.startswith("str") and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _as_list(value) -> list:
    """A value or a sequence (list, tuple, range, NumPy array) as a list of plain Python values; a named
    tuple (an optax transformation) is one value."""
    if isinstance(value, str) or not hasattr(value, "__iter__") or hasattr(value, "_fields"):
        value = [value]
    return [_python(v) for v in value]


def _python(value):
    """A NumPy scalar as the Python number it holds; anything else as it is."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _file_table(path: Path) -> tuple:
    """A CSV file as (header, lines function)."""
    with open(path) as f:
        header = tuple(f.readline().rstrip("\n").split(","))

    def lines():
        with open(path) as f:
            f.readline()
            yield from f

    return header, lines
