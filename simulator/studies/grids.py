"""Experiment grids: any run option takes a list of values, and the runs are every combination.

A grid is a set of *axes* (a field and its values; one value fixes the field for every run) and,
optionally, total worker counts P that hold N + B fixed: with a ``backups`` axis, N = P - B;
with a ``workers`` axis, B = P - N. An axis applies to the strategies that take it (semantics to
``backup``, ``k`` to the k-strategies ...); an axis that no run would use is an error, never
silently ignored. Grids come from the command line, from a TOML file (``sweep --grid``) or from
the Python API, and a sweep folder records its grids in ``grid.toml`` in the same format.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from ..core.config import RunConfig, budget_default
from ..io.errors import InputError, named
from ..io.shipped import read_toml
from ..strategies import get, names
from ..strategies import option_specs as strategy_options

# values that hold commas themselves: each is one value, and the option is given once per value
REPEATABLE = ("latency", "speed_factors", "fail_slow", "fail_at", "failures", "hidden", "data_path")
NOT_AXES = ("checkpoint_every",)  # checkpoints belong to single runs; a sweep resumes run by run
MAX_RUNS = 1_000_000  # runs of one sweep
TRAINING_ONLY = (
    "model", "dataset", "data_path", "dataset_size", "data_partition", "batch_size", "hidden", "optimizer", "lr",
    "momentum", "lr_schedule", "lr_decay_rate", "lr_decay_steps", "lr_scaling", "eval_every", "target_accuracy",
    "target_loss", "stop_at_target", "gradient_quality", "reference_batch", "quality_every", "divergence_loss",
    "validation_split",
)  # fmt: skip
NAMED = {"strategy", "workers", "backups", "seed", *(o.field for o in strategy_options())}  # in every run's name
KINDS = {f.name: f.type.split(" |")[0] for f in fields(RunConfig)}  # int, float, str or bool


def check_runs(count: int, what: str) -> None:
    """Refuse a sweep of more than ``MAX_RUNS`` runs (``what``: the options that make it)."""
    if count > MAX_RUNS:
        raise InputError(f"{what}: {count:,} runs (at most {MAX_RUNS:,}); make the grid smaller")


def flag(name: str) -> str:
    """A field of a grid named in a message (the seed axis is ``seeds``)."""
    return named("seeds" if name == "seed" else name)


def parse_int_list(text: str, option: str) -> list[int]:
    """``0,1,2`` or ``0-8`` (inclusive) or a mix: ``0-3,6``."""
    values: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, dash, hi = part.partition("-")
            if dash and lo and int(hi) < int(lo):
                raise InputError(f"{option} {text!r}: the range {part} goes down; write {hi}-{lo}")
            more = int(hi) - int(lo) + 1 if dash and lo else 1
            if len(values) + more > MAX_RUNS:
                raise InputError(f"{option} {text!r}: more than {MAX_RUNS:,} values")
            values.extend(range(int(lo), int(hi) + 1) if dash and lo else [int(part)])
    except InputError:
        raise
    except ValueError:
        raise InputError(f"{option} {text!r}: expected integers like 0,1,2 or a range 0-8") from None
    if not values:
        raise InputError(f"{option} {text!r}: no values")
    return values


def parse_values(name: str, text: str) -> list:
    """The values of one command-line axis: a comma list (integers also ``A-B``); ``none`` for an
    optional field's unset value. A repeatable field's text is one value."""
    if name in REPEATABLE:
        return [text]
    optional = RunConfig.__dataclass_fields__[name].type.endswith("None")
    parts = [p.strip() for p in str(text).split(",")]
    if not all(parts):
        raise InputError(f"{flag(name)} {text!r}: an empty value in the list")
    values: list = []
    for part in parts:
        if optional and part.lower() == "none":
            values.append(None)
        elif KINDS[name] == "int":
            values += parse_int_list(part, flag(name))
        elif KINDS[name] == "float":
            try:
                values.append(float(part))
            except ValueError:
                raise InputError(f"{flag(name)} {text!r}: {part!r} is not a number") from None
        else:
            values.append(part)
    return values


@dataclass
class Grid:
    """Axes (field -> values) and, optionally, total worker counts P."""

    axes: dict[str, list] = field(default_factory=dict)
    total_workers: list[int] = field(default_factory=list)

    def __post_init__(self):
        for name, values in self.axes.items():
            if name not in KINDS:
                raise InputError(f"grid: unknown option {name!r}{_near(name)}")
            if name in NOT_AXES:
                raise InputError(f"{flag(name)}: checkpoints belong to single runs (a sweep resumes run by run)")
            if not values:
                raise InputError(f"{flag(name)}: no values")
            if len(set(map(repr, values))) < len(values):
                raise InputError(f"{flag(name)} {_show(values)}: a value is listed twice")

    @classmethod
    def from_mapping(cls, data: dict, *, source: str) -> Grid:
        """From a TOML table or the API's keywords: a list is an axis, anything else one value;
        integers may be ranges (``"0-8"``); ``seeds`` is ``seed``; ``total_workers`` is P."""
        axes: dict[str, list] = {}
        total: list[int] = []
        if "seed" in data and "seeds" in data:
            raise InputError(f"{source}: seed and seeds: give one (seeds = [0, 1, 2] or seed = 0)")
        for key, value in data.items():
            name = "seed" if key == "seeds" else key
            values = list(value) if isinstance(value, list | tuple | range) else [value]
            if name == "total_workers":
                total = _typed("total_workers", "int", values, source)
            elif name not in KINDS:
                raise InputError(f"{source}: unknown option {key!r}{_near(key)}")
            else:
                axes[name] = _typed(name, KINDS[name], values, source)
        return cls(axes, total)

    @classmethod
    def load(cls, path: Path, *, what: str = "--grid ") -> Grid:
        """A grid file: flat keys, or the ``[[grid]]`` tables of a sweep folder's ``grid.toml`` (their union);
        ``what`` says in messages where the file came from."""
        data = read_toml(path, what=what)
        tables = data.pop("grid", None)
        if tables is None:
            return cls.from_mapping(data, source=str(path))
        if data or not isinstance(tables, list):
            raise InputError(f"{what}{path}: either flat keys or [[grid]] tables, not both")
        return Union([cls.from_mapping(t, source=f"{path} [[grid]] {i + 1}") for i, t in enumerate(tables)])

    def to_dict(self) -> dict:
        """The TOML table of this grid (one value: a scalar; None left out)."""
        table: dict = {}
        if self.total_workers:
            table["total_workers"] = self.total_workers if len(self.total_workers) > 1 else self.total_workers[0]
        for name, values in self.axes.items():
            kept = ["none" if v is None else v for v in values]  # TOML has no null
            table["seeds" if name == "seed" else name] = kept if len(values) > 1 else kept[0]
        return table

    def merged(self, other: Grid) -> Grid:
        """This grid with ``other``'s axes (and P) replacing its own."""
        return Grid({**self.axes, **other.axes}, other.total_workers or self.total_workers)

    def configs(self) -> list[RunConfig]:
        """Every combination, each run checked; in the order of the fields, seeds innermost.

        Raises:
            InputError: an axis no run uses, N + B that cannot make P, a combination of options
                that cannot run together, or an empty grid.
        """
        axes = {n: v for n, v in self.axes.items() if n != "seed"}
        axes["seed"] = self.axes.get("seed", [0])
        if self.total_workers:
            self._check_total()
        names = list(axes)
        count = math.prod(len(v) for v in axes.values()) * max(1, len(self.total_workers))
        check_runs(count, " x ".join(f"{flag(n)} ({len(v)})" for n, v in axes.items() if len(v) > 1) or "the grid")
        seen: dict[str, RunConfig] = {}
        for combination in itertools.product(*axes.values()):
            for total in self.total_workers or [None]:
                config = self._config(dict(zip(names, combination, strict=True)), total)
                if config is not None:
                    seen.setdefault(digest(config), config)
        configs = list(seen.values())
        if not configs:
            has = [n for n in self.axes.get("strategy", [RunConfig.strategy]) if get(n).has_backups]
            raise InputError(
                "the sweep is empty: "
                + (
                    f"no strategy of the grid takes {named('backups')} > 0"
                    if not has
                    else "every combination was skipped"
                )
            )
        self._check_used(configs)
        return configs

    def _check_total(self) -> None:
        given = [n for n in ("workers", "backups") if n in self.axes]
        if len(given) != 1:
            raise InputError(
                f"{named('total_workers')} P: give {named('backups')} (varies "
                f"B; N = P - B) or {named('workers')} (varies N; B = P - N)" + (", not both" if given else "")
            )
        for p in self.total_workers:
            for value in self.axes[given[0]]:
                if value >= p if given[0] == "backups" else value > p:
                    raise InputError(f"{named('total_workers')} {p}: {flag(given[0])} {value} leaves no room")

    def _config(self, values: dict, total: int | None) -> RunConfig | None:
        """The run of one combination, or None where the strategy does not take it (backups > 0
        for a strategy without backup workers)."""
        values = dict(values)
        strategy = get(values.get("strategy", RunConfig.strategy))
        if total is not None:
            if "backups" in self.axes:
                values["workers"] = total - values["backups"] if strategy.has_backups else total
                values["backups"] = values["backups"] if strategy.has_backups else 0
            else:
                values["backups"] = total - values["workers"]
        if values.get("backups", 0) and not strategy.has_backups:
            return None
        for option in strategy_options():
            if option.field in values and not strategy.owns(option):
                del values[option.field]  # this strategy does not take it: its default
        try:
            return RunConfig(**budget_default(values)).validate()
        except InputError as err:
            raise InputError(f"{err.args[0]} (in the grid's run {_describe(values)})") from None

    def _check_used(self, configs: list[RunConfig]) -> None:
        """Every axis is used by some run, and one with several values varies some run."""
        strategies = {c.strategy for c in configs}
        for option in strategy_options():
            values = self.axes.get(option.field)
            if values is not None and not any(get(s).owns(option) for s in strategies):
                raise InputError(
                    f"{flag(option.field)} {_show(values)}: applies to {named('strategy')} "
                    f"{' / '.join(option.strategies)} only, and the grid has {', '.join(sorted(strategies))}"
                )
        if any(self.axes.get("backups", [0])) and not any(get(s).has_backups for s in strategies):
            owners = " / ".join(n for n in names() if get(n).has_backups)
            raise InputError(
                f"{named('backups')} {_show(self.axes['backups'])}: only "
                f"{named('strategy')} {owners} takes backup workers, "
                f"and the grid has {', '.join(sorted(strategies))}"
            )
        if all(c.timing_only for c in configs):
            for name in TRAINING_ONLY:
                if len(self.axes.get(name, ())) > 1:
                    raise InputError(f"{flag(name)} {_show(self.axes[name])}: {named('timing_only')} runs do not train")


class Union(Grid):
    """Several grids (a sweep folder extended with --extend): the runs of each, in order."""

    def __init__(self, grids: list[Grid]):
        self.grids = grids
        super().__init__({}, [])

    def configs(self) -> list[RunConfig]:
        seen: dict[str, RunConfig] = {}
        for g in self.grids:
            for c in g.configs():
                seen.setdefault(digest(c), c)
        return list(seen.values())

    def merged(self, other: Grid) -> Grid:
        """A folder's record takes no other options (which of its grids would they change?)."""
        if other.axes or other.total_workers:
            raise InputError(
                f"{named('grid')}: a sweep folder's record (grid.toml); give no other grid options with it"
            )
        return self

    def to_tables(self) -> list[dict]:
        return [g.to_dict() for g in self.grids]


def to_toml(tables: list[dict], header: str = "") -> str:
    """``[[grid]]`` tables as TOML, a list on one line (``backups = [0, 2, 4]``)."""

    def value(v) -> str:
        return "[" + ", ".join(map(value, v)) + "]" if isinstance(v, list) else tomli_w.dumps({"v": v})[4:].strip()

    return header + "".join("\n[[grid]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in t.items()) for t in tables)


ARTICLES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _typed(name: str, kind: str, values: list, source: str) -> list:
    out = []
    optional = name != "total_workers" and RunConfig.__dataclass_fields__[name].type.endswith("None")
    for v in values:
        if optional and isinstance(v, str) and v.lower() == "none":
            out.append(None)
            continue
        if kind == "int" and isinstance(v, str):
            out += parse_int_list(v, f"{source}: {name}")
            continue
        ok = {
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, int | float) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "str": isinstance(v, str),
        }[kind]
        if not ok:
            raise InputError(f"{source}: {name} = {v!r}: expected {ARTICLES[kind]}")
        out.append(float(v) if kind == "float" else v)
    return out


def _near(key: str) -> str:
    """``; did you mean 'backups'?``, or where the options are listed."""
    near = difflib.get_close_matches(key, [*KINDS, "seeds", "total_workers"], n=1)
    return f"; did you mean {near[0]!r}?" if near else " (the options of simulate, with underscores; seeds)"


def _show(values: list) -> str:
    """The values as listed (the first 10 of a longer list, and how many there are)."""
    shown = ",".join("none" if v is None else str(v) for v in values[:10])
    return shown if len(values) <= 10 else f"{shown},... ({len(values):,} values)"


def _describe(values: dict) -> str:
    return " ".join(f"{flag(k)} {v}" for k, v in values.items() if k in ("strategy", "workers", "backups", "seed"))


def digest(config: RunConfig) -> str:
    """A hash of the whole configuration: runs that differ in anything never share it."""
    return hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_name(config: RunConfig, tags: tuple[str, ...] = ()) -> str:
    """A run's folder name: the strategy's part (strategy, N, B, its options), the ``tags`` fields
    (those a grid varies beyond these), the seed and the digest. Readable, and unique by the digest."""
    name = get(config.strategy).run_name(config)
    extra = "".join(f"-{_tag(t, getattr(config, t))}" for t in tags if t not in NAMED)
    return f"{name}{extra}-seed{config.seed}-{digest(config)}"


def varied(configs: list[RunConfig]) -> tuple[str, ...]:
    """The fields whose value differs between runs (the seed excepted), in declared order."""
    return tuple(
        f.name for f in fields(RunConfig) if f.name != "seed" and len({repr(getattr(c, f.name)) for c in configs}) > 1
    )


def _tag(name: str, value) -> str:
    short = {"batch_size": "bs", "latency": "", "speed_factors": "speeds", "comm_latency": "comm"}.get(name, name)
    text = "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    text = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[:40]
    return f"{short.replace('_', '')}{text}" if short else text


def grid_from_options(values: dict, file: Path | None = None) -> Grid:
    """The grid of ``sweep``'s options (``values``: the parsed command line; ``None``: not given),
    over the grid of ``file`` if given (flags given win over its keys).

    Raises:
        InputError: a malformed list, or flags beside a folder's ``[[grid]]`` record.
    """
    defaults = RunConfig()
    axes: dict[str, list] = {}
    for f in fields(RunConfig):
        value = values.get(f.name)
        if value is None or (value is False and f.default is not True):  # a flag's False: not given
            continue
        if f.name in ("trace_format", "time_scale"):  # one value each (add_trace_options)
            if value != getattr(defaults, f.name):
                axes[f.name] = [value]
        elif isinstance(value, list | bool):
            axes[f.name] = [value] if isinstance(value, bool) else value
        else:
            axes[f.name] = parse_values(f.name, value)
    total = values.get("total_workers")
    grid = Grid(axes, parse_int_list(total, named("total_workers")) if total else [])
    if file is None:
        return grid
    return Grid.load(file).merged(grid)
