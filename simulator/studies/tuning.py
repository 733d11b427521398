"""Tuning done right: each configuration's own best value of some options, chosen on a validation
split carved from the training set, then reported on the test set.

A tuning folder ``DIR`` holds:

- ``tune.toml``: the options tuned with their candidates, the selection metric, the validation
  split and the grid (``[[grid]]`` tables, the tuned options and the split among their axes);
- ``candidates/``: a sweep of every configuration x candidate x seed, each run holding out
  ``validation_split`` of the training set and evaluating on it (the test set is never read);
- ``final/``: a sweep of each configuration's winner on the whole training set, evaluated on the
  test set, with the same seeds (``aggregate``, ``compare`` and ``plot`` read it; given ``DIR``
  they read it too);
- ``tuned.csv``: one row per configuration (``selection.table``).

How the winner is chosen, and how a run that diverged or missed the target counts: ``selection``.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from ..core.assemble import check
from ..core.config import RunConfig
from ..io.errors import InputError, named
from ..io.progress import RunCounter
from ..io.results import check_out_place, write_results, write_text
from ..io.storage import FolderLock
from .aggregation import FINAL, TUNE_FILE
from .grids import KINDS, NOT_AXES, REPEATABLE, Grid, Union, digest, parse_int_list, parse_values, to_toml
from .selection import LOWER_IS_BETTER, Choice, choose, label, table
from .sweeps import clear_entries, run_sweep

SELECT_BY = tuple(LOWER_IS_BETTER)
VALIDATION_SPLIT = 0.1  # the default fraction of the training set held out for selection
TABLE, CANDIDATES = "tuned.csv", "candidates"
ENTRIES = (TUNE_FILE, TABLE, CANDIDATES, FINAL)
NOT_TUNED = ("seed", "validation_split", "timing_only", *NOT_AXES, *REPEATABLE)  # not choices of a method
HEADER = (
    "# stragglersim tune: each configuration's best candidate of [tune], by the mean over seeds of select_by\n"
    "# on a validation split of the training set (candidates/), run again on the test set (final/); tuned.csv\n"
)


@dataclass(frozen=True)
class Tuning:
    """The options tuned (field -> candidate values), the selection metric and the validation split."""

    options: dict[str, list]
    select_by: str
    validation_split: float = VALIDATION_SPLIT

    def __post_init__(self):
        if not self.options:
            raise InputError(f"{named('tune')}: give the options to tune with their candidates, e.g. lr=0.01,0.1")
        for name, values in self.options.items():
            _check_name(name)
            if not values or len(set(map(repr, values))) < len(values):
                raise InputError(f"{named('tune')} {name}: give its candidates, each once")
        if self.select_by not in SELECT_BY:
            raise InputError(f"{named('select_by')} {self.select_by!r}: one of {', '.join(SELECT_BY)}")

    @classmethod
    def parse(cls, texts: list[str], select_by: str, validation_split: str | None = None) -> Tuning:
        """From the command line's ``--tune NAME=V1,V2,...`` (repeated: crossed) and ``--validation-split F``."""
        options: dict[str, list] = {}
        for text in texts:
            name, equals, values = (part.strip() for part in text.partition("="))
            name = name.replace("-", "_")
            if not equals or not values:
                raise InputError(f"{named('tune')} {text!r}: expected OPTION=V1,V2,... like lr=0.01,0.1")
            _check_name(name)
            if name in options:
                raise InputError(f"{named('tune')} {name}: given twice; list its candidates once")
            options[name] = [v for part in values.split(",") for v in _values(name, part.strip(), text)]
        if validation_split is None:
            return cls(options, select_by)
        split = parse_values("validation_split", validation_split)
        if len(split) != 1 or split[0] is None:
            raise InputError(f"{named('validation_split')} {validation_split}: give one fraction, e.g. 0.1")
        return cls(options, select_by, split[0])

    @classmethod
    def from_mapping(cls, options: dict, select_by: str, validation_split: float | None) -> Tuning:
        """From the API's ``tune={"lr": [0.01, 0.1]}`` (a value or a list each)."""
        if not isinstance(options, dict):
            raise InputError(f"{named('tune')}: a dict of option -> candidate values, e.g. {{'lr': [0.01, 0.1]}}")
        for name in options:
            _check_name(name)
        axes = Grid.from_mapping(options, source=named("tune")).axes
        return cls(axes, select_by, VALIDATION_SPLIT if validation_split is None else validation_split)

    def candidates(self) -> list[dict]:
        """Every combination of the tuned options' values, in the order listed (the first option outermost)."""
        return [dict(zip(self.options, values, strict=True)) for values in itertools.product(*self.options.values())]

    def selection_grid(self, grid: Grid) -> Grid:
        """The candidates' grid: ``grid`` with the tuned options and the validation split as axes.

        Raises:
            InputError: a tuned option or the validation split is also an axis of ``grid``; a run of
                a budget metric would stop at its target.
        """
        extra = {**self.options, "validation_split": [self.validation_split]}
        for g in grid.grids if isinstance(grid, Union) else [grid]:
            for name in (*self.options, "validation_split"):
                if name in g.axes:
                    given = ",".join(map(str, g.axes[name]))
                    raise InputError(
                        f"{named('tune')} {name}: also given as {named(name)} {given}; tune it or fix it, not both"
                        if name in self.options
                        else f"{named('validation_split')} {given}: give tune's validation split (one fraction)"
                    )
            if self.select_by != "time_to_target":  # equal budgets: no run may stop early at a target
                if True in g.axes.get("stop_at_target", []):
                    raise InputError(
                        f"{named('select_by')} {self.select_by} compares runs at the end of their budget: "
                        f"give {named('stop_at_target', negated=True)} or leave it out (tune then sets it)"
                    )
                extra["stop_at_target"] = [False]
        if isinstance(grid, Union):
            return Union([g.merged(Grid(dict(extra))) for g in grid.grids])
        return grid.merged(Grid(extra))

    def record(self, grid: Grid) -> str:
        """``tune.toml``'s text: this tuning and the candidates' grid."""
        head = tomli_w.dumps({"select_by": self.select_by, "validation_split": self.validation_split})
        tables = grid.to_tables() if isinstance(grid, Union) else [grid.to_dict()]
        listed = "".join(f"{name} = {_toml(values)}\n" for name, values in self.options.items())
        return HEADER + head + "\n[tune]\n" + listed + to_toml(tables)


def _toml(values: list) -> str:
    """A list as TOML on one line: ``[0.01, 0.1]``."""
    return "[" + ", ".join(tomli_w.dumps({"v": v})[4:].strip() for v in values) + "]"


def _check_name(name: str) -> None:
    if name not in KINDS:
        near = difflib.get_close_matches(name, list(KINDS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else " (the options of sweep, with underscores)"
        raise InputError(f"{named('tune')} {name}: unknown option{hint}")
    if name in NOT_TUNED:
        raise InputError(f"{named('tune')} {name}: not an option to tune (it is not a choice of the method)")


def _values(name: str, text: str, given: str) -> list:
    """The candidates of one item of ``--tune NAME=...`` as its field's type (an integer item may be a range A-B)."""
    kind = KINDS[name]
    if not text:
        raise InputError(f"{named('tune')} {given!r}: an empty value in the list")
    if text.lower() == "none" and RunConfig.__dataclass_fields__[name].type.endswith("None"):
        return [None]
    if kind == "int":
        return parse_int_list(text, f"{named('tune')} {name}")
    if kind == "float":
        try:
            return [float(text)]
        except ValueError:
            raise InputError(f"{named('tune')} {given!r}: {text!r} is not a number") from None
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise InputError(f"{named('tune')} {given!r}: {text!r} is not true or false")
        return [text.lower() == "true"]
    return [text]


def tune(
    grid: Grid,
    out: Path,
    tuning: Tuning,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    quiet: bool = True,
    log: Callable[[str], object] = lambda message: None,
    warn: Callable[[str], object] = lambda message: None,
    overwrite: bool = False,
) -> list[dict]:
    """Choose each configuration's candidate on the validation split, run it on the test set, and
    write ``out`` (see the module's docstring); returns the rows of ``tuned.csv``.

    Args:
        grid: the configurations (any options but the tuned ones), seeds among its axes.
        tuning: the options tuned, the selection metric and the validation split.
        jobs, scheduler: as for a sweep. quiet: no live count of runs on stderr.
        log: one-line messages (runs resumed). warn: one line per winner at the edge of its
            candidates, and per configuration none of whose candidates has a finite score.
        overwrite: remove a tuning already in ``out`` (only what tuning writes) and start again.

    Raises:
        InputError: bad options, before anything is written; ``out`` holds something else.
        RunsFailed: some runs raised (see ``failures.txt`` in ``candidates/`` or ``final/``).
    """
    out = Path(out)
    check_out_place(out)
    selection = tuning.selection_grid(grid)
    configs = selection.configs()
    _check(configs, tuning.select_by)
    _check_rate(configs, tuning)
    choose(configs, [{}] * len(configs), tuning.candidates(), tuning.select_by)  # every candidate runs
    record = tuning.record(selection)
    with FolderLock(out):
        _prepare(out, record, overwrite, log)
        write_text(out / TUNE_FILE, record)
        options = {"jobs": jobs, "scheduler": scheduler, "log": log}
        summaries = _phase(selection, configs, out / CANDIDATES, quiet=quiet, **options)
        choices = choose(configs, summaries, tuning.candidates(), tuning.select_by)
        finals = [choice.finals() for choice in choices]
        flat = [config for group in finals for config in group]
        tested = iter(_phase(flat, flat, out / FINAL, quiet=quiet, **options))
        rows = table(choices, [[next(tested) for _ in group] for group in finals])
        write_results(rows, out / TABLE)
    for choice, row in zip(choices, rows, strict=True):
        for line in _warnings(choice, row):
            warn(line)
    return rows


def _check_rate(configs: list[RunConfig], tuning: Tuning) -> None:
    """Refuse to tune ``lr`` for an optimizer of the user's whose rate is inside it: every candidate would tie."""
    from ..training.optim import rate_fixed  # here, not at import: it imports optax (JAX), which tune needs anyway

    if "lr" in tuning.options:
        for optimizer in dict.fromkeys(config.optimizer for config in configs):
            if rate_fixed(optimizer):
                raise InputError(
                    f"{named('tune')} lr: {named('optimizer')} {optimizer} has its learning rate inside it, so every "
                    f"candidate would be the same run; give a factory taking learning_rate (package.module:factory)"
                )


def _check(configs: list[RunConfig], select_by: str) -> None:
    """Every run trains, has its target for ``time_to_target`` and passes the sweep's checks."""
    for config in configs:
        if config.timing_only:
            raise InputError(f"{named('timing_only')}: tuning compares trained runs; leave it out")
        if select_by == "time_to_target" and config.target_accuracy is None and config.target_loss is None:
            raise InputError(
                f"{named('select_by')} time_to_target: needs a target, {named('target_accuracy')} "
                f"or {named('target_loss')}"
            )
        check(config)
        assert config.validation_split is not None  # the candidates never see the test set


def _prepare(out: Path, record: str, overwrite: bool, log) -> None:
    """Make ``out`` ready: new, the same tuning (resumed), or cleared with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{named('out')} {out}: exists and is not a directory")
    recorded = out / TUNE_FILE
    if overwrite:
        clear_entries(out, ENTRIES)
    elif recorded.is_file():
        if recorded.read_text() != record:
            raise InputError(
                f"{named('out')} {out}: holds another tuning ({recorded}); "
                f"pass {named('overwrite')} to start again, or another {named('out')}"
            )
        log(f"{out}: the same tuning; resuming it")
    elif out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise InputError(
            f"{named('out')} {out}: not empty and records no tuning; "
            f"pass {named('overwrite')} or another {named('out')}"
        )
    out.mkdir(parents=True, exist_ok=True)


def _phase(runs, configs: list[RunConfig], folder: Path, *, quiet: bool, **options) -> list[dict]:
    """Sweep ``runs`` (a grid, or the ``configs`` themselves) into ``folder``; each config's summary."""
    counter = RunCounter(desc=f"tune: {folder.name}", quiet=quiet)
    try:
        rows = run_sweep(runs, folder, counter=counter, **options)
    finally:
        counter.close()
    by_digest = {row["run"].rsplit("-", 1)[-1]: row for row in rows}  # a run's name ends with its digest
    return [by_digest[digest(config)] for config in configs]


def describe(rows: list[dict], tuning: Tuning, out: Path) -> str:
    """What ``stragglersim tune`` prints: each configuration's winner, its validation score and its test score."""
    metric = tuning.select_by
    lines = [
        f"chosen by the mean {metric} over seeds on a validation split of {tuning.validation_split:g} "
        f"of the training set; then on the test set:"
    ]
    for row in rows:
        chosen = label({name: row[name] for name in tuning.options})
        edge = " (at the edge of the candidates)" if row["at_edge"] else ""
        scores = f"validation {_number(row[f'{metric}[{chosen}]'])}, test {_number(row[f'test_{metric}'])}"
        lines.append(f"  {_where(row)}: {chosen}{edge}: {scores} ({row['test_n_seeds']} seeds)")
    lines.append(f"table: {out / TABLE}; final runs: {out / FINAL}")
    return "\n".join(lines)


def _number(x) -> str:
    return "none" if x is None or abs(x) == float("inf") else f"{x:.4g}"


def _where(row: dict) -> str:
    """A row's configuration: the fields before ``n_seeds``."""
    return ", ".join(f"{k}={row[k]}" for k in itertools.takewhile(lambda k: k != "n_seeds", row))


def _warnings(choice: Choice, row: dict) -> list[str]:
    where = _where(row)
    chosen = choice.candidates[choice.winner]
    lines = []
    if all(abs(m) == float("inf") for m in choice.means):
        lines.append(
            f"{where}: no candidate has a finite {choice.metric} on every seed; {label(chosen)} (listed first) is kept"
        )
    for name in choice.edges:
        values = [c[name] for c in choice.candidates]
        end = "smallest" if chosen[name] == min(values) else "largest"
        lines.append(f"{where}: {label({name: chosen[name]})} is the {end} candidate of {name}; widen the grid")
    return lines
