"""One frozen configuration per run, validated in one place and saved beside the results."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tomli_w

from .. import strategies
from ..io import imports
from ..io.checks import finite_nonneg as _finite_nonneg
from ..io.checks import is_int as _is_int
from ..io.checks import positive as _positive
from ..io.errors import InputError, named
from ..io.shipped import read_toml
from ..models.catalog import DATASETS, MODELS

PARTITIONS = ("shared", "sharded", "by-work")
DATA_COSTS = ("none", "nnz")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
SCHEDULES = ("constant", "exponential")
SCALINGS = ("none", "linear", "sqrt")
SHARED = "1 unless --ps-service or --ps-bandwidth gives the servers something to share"
FLOAT32_MAX = 3.4028234663852886e38  # the largest float32: training's parameters and learning rate


def budget_default(values: dict) -> dict:
    """``values`` (RunConfig's keyword arguments) with ``steps`` unset where a budget (``until``,
    ``budget_gradients``) is given and ``steps`` is not: the budget ends the run, not 1000 updates."""
    if "steps" not in values and (values.get("until") is not None or values.get("budget_gradients") is not None):
        return {**values, "steps": None}
    return values


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Same config, same event log.

    Each field's meaning, unit and command-line flag are declared once, in ``options.OPTIONS``
    (the CLI's help is generated from there); its default is the one below. ``None`` means
    "not set": a strategy parameter of another strategy, or a size resolved at run time
    (``param_bytes``: the model's parameter size when training, 0 in timing-only runs;
    ``steps``: until a worker's trace is used up, in exact ``trace:`` replay only).
    """

    strategy: str = "backup"
    workers: int = 16
    backups: int = 0
    semantics: str | None = None
    staleness_cutoff: int | None = None
    k: int | None = None
    softsync_n: int | None = None
    ssp_bound: int | None = None
    deadline: float | None = None
    staleness_lr: bool = False
    noise_scale: float | None = None
    adapt_every: int = 20
    latency: str = "exponential:rate=1"
    speed_factors: str = ""
    comm_latency: float = 0.0
    bandwidth: float = math.inf
    param_bytes: float | None = None
    ps_bandwidth: float = math.inf
    ps_service: float | None = None  # seconds one server takes to apply an update (None: 0, instantaneous)
    ps_servers: int | None = None  # parameter shards, one per server (None: 1)
    fail_slow: str = ""
    fail_at: str = ""
    failures: str = ""
    data_cost: str = "none"
    steps: int | None = 1000
    trace_format: str = "csv"
    time_scale: float = 1.0
    seed: int = 0
    timing_only: bool = False
    log_gradients: str = "all"
    model: str = "mlp"
    dataset: str = "digits"
    data_path: str = ""
    dataset_size: int = 0
    data_partition: str = "shared"
    batch_size: int = 32
    hidden: str = "128"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    lr_schedule: str = "constant"
    lr_decay_rate: float = 0.94
    lr_decay_steps: int = 100
    lr_scaling: str = "none"
    eval_every: str = "auto"
    target_accuracy: float | None = None
    target_loss: float | None = None
    stop_at_target: bool = True
    gradient_quality: bool = False
    checkpoint_every: str = ""
    reference_batch: int = 2048
    quality_every: int | None = None
    until: float | None = None
    budget_gradients: int | None = None
    divergence_loss: float | None = None
    validation_split: float | None = None
    sources: str | None = None  # the user's model, dataset, optimizer: FIELD=sha256:HEX of each source file

    @property
    def measures_quality(self) -> bool:
        """Whether gradient quality is measured (``--gradient-quality`` or ``--quality-every``)."""
        return self.gradient_quality or self.quality_every is not None

    @property
    def budgeted(self) -> bool:
        """Whether a budget (``--until``, ``--budget-gradients``) ends the run."""
        return self.until is not None or self.budget_gradients is not None

    def __post_init__(self):
        strategy = strategies.find(self.strategy)
        for name, value in strategy.defaults.items() if strategy is not None else ():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def total_workers(self) -> int:
        """Worker processes in the run (N + B for sync and backup; the strategy says)."""
        strategy = strategies.find(self.strategy)
        return strategy.processes(self) if strategy is not None else self.workers

    def validate(self) -> RunConfig:
        """Check every field; return self. Pure: no file is read (the latency, speed factors and
        faults are resolved, and checked, by :func:`~stragglersim.core.assemble.assemble`).

        Raises:
            InputError: naming the field, what is wrong and what would be right.
        """

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InputError(message)

        self._check_types()

        family = strategies.get(self.strategy)  # --strategy: unknown strategy ... (choose from ...)
        strategies.check_options(self, ("semantics",))
        need(
            _is_int(self.workers) and self.workers >= 1,
            f"{named('workers')} must be an integer >= 1, got {self.workers}",
        )
        need(
            _is_int(self.backups) and self.backups >= 0,
            f"{named('backups')} must be an integer >= 0, got {self.backups}",
        )
        if self.steps is None:
            need(
                self.latency.strip().startswith("trace:") or self.budgeted,
                f"{named('steps')} is needed unless the latency is an exact trace:PATH replay "
                f"or {named('until')} or {named('budget_gradients')} ends the run",
            )
        else:
            need(_is_int(self.steps) and self.steps >= 1, f"{named('steps')} must be an integer >= 1, got {self.steps}")
        need(_is_int(self.seed) and self.seed >= 0, f"{named('seed')} must be an integer >= 0, got {self.seed}")
        family.check(self)  # --backups
        self._validate_family(need)
        system = (  # field, whether its value is right, what it must be
            ("comm_latency", _finite_nonneg(self.comm_latency), "a finite number >= 0 (seconds)"),
            ("bandwidth", self.bandwidth > 0, "> 0 (bytes per second)"),
            ("param_bytes", self.param_bytes is None or _finite_nonneg(self.param_bytes), "a finite number >= 0"),
            ("ps_bandwidth", self.ps_bandwidth > 0, "> 0 (bytes per second)"),
            ("ps_service", _finite_nonneg(self.ps_service or 0.0), "a finite number >= 0 (seconds)"),
            ("ps_servers", self.ps_servers is None or self.ps_servers >= 1, "an integer >= 1"),  # an int: typed
            ("ps_servers", (self.ps_servers or 1) == 1 or self.ps_service or self.ps_bandwidth < math.inf, SHARED),
        )
        for name, ok, what in system:
            need(ok, f"{named(name)} must be {what}, got {getattr(self, name)}")
        need(
            self.data_cost in DATA_COSTS,
            f"{named('data_cost')}: unknown {self.data_cost!r} (choose from {', '.join(DATA_COSTS)})",
        )
        need(
            self.data_partition != "by-work" or self.data_cost != "none",
            f"{named('data_partition')} by-work needs {named('data_cost')} nnz",
        )
        need(
            self.log_gradients in ("all", "none"),
            f"{named('log_gradients')}: expected all or none, got {self.log_gradients!r}",
        )
        self._validate_training(need)
        return self

    def _check_types(self) -> None:
        """Every field has its declared type (a config file can hold anything)."""
        accept = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
        for f in fields(self):
            value = getattr(self, f.name)
            kinds = [k.strip() for k in str(f.type).split("|")]
            if value is None and "None" in kinds:
                continue
            ok = any(isinstance(value, accept[k]) for k in kinds if k in accept)
            if isinstance(value, bool) and "bool" not in kinds:
                ok = False
            if not ok:
                wanted = " or ".join(k if k != "None" else "absent" for k in kinds)
                raise InputError(f"field {f.name!r}: expected {wanted}, got {value!r}")

    def _validate_family(self, need) -> None:
        """The strategy options other than --semantics: each belongs to its strategies (the
        registry says which), is needed there if it has no default, and has its own check."""
        strategies.check_options(self, [o.field for o in strategies.option_specs() if o.field != "semantics"])

    def _validate_training(self, need) -> None:
        for field, builtins in (("model", MODELS), ("dataset", DATASETS), ("optimizer", OPTIMIZERS)):
            imports.check_syntax(field, getattr(self, field), builtins)  # a name, or the user's own (import path)
        need(
            _is_int(self.dataset_size) and self.dataset_size >= 0,
            f"{named('dataset_size')} must be an integer >= 0, got {self.dataset_size}",
        )
        need(
            self.data_partition in PARTITIONS,
            f"{named('data_partition')}: unknown {self.data_partition!r} (choose from {', '.join(PARTITIONS)})",
        )
        need(
            _is_int(self.batch_size) and self.batch_size >= 1,
            f"{named('batch_size')} must be an integer >= 1, got {self.batch_size}",
        )
        self.hidden_sizes  # noqa: B018 (validates)
        need(_positive(self.lr), f"{named('lr')} must be a finite number > 0, got {self.lr}")
        need(
            _finite_nonneg(self.momentum) and self.momentum < 1,
            f"{named('momentum')} must be in [0, 1), got {self.momentum}",
        )
        need(
            self.lr_schedule in SCHEDULES,
            f"{named('lr_schedule')}: unknown {self.lr_schedule!r} (choose from {', '.join(SCHEDULES)})",
        )
        need(
            _positive(self.lr_decay_rate) and self.lr_decay_rate <= 1,
            f"{named('lr_decay_rate')} must be in (0, 1], got {self.lr_decay_rate}",
        )
        need(
            _is_int(self.lr_decay_steps) and self.lr_decay_steps >= 1,
            f"{named('lr_decay_steps')} must be an integer >= 1, got {self.lr_decay_steps}",
        )
        need(
            self.lr_scaling in SCALINGS,
            f"{named('lr_scaling')}: unknown {self.lr_scaling!r} (choose from {', '.join(SCALINGS)})",
        )
        scaled = self.lr * {"linear": self.total_workers, "sqrt": math.sqrt(self.total_workers)}.get(self.lr_scaling, 1)
        need(
            self.timing_only or scaled <= FLOAT32_MAX,
            f"{named('lr')} {self.lr:g}: a learning rate of {scaled:.3g} "
            f"(after {named('lr_scaling')}) is beyond the largest float32 "
            f"({FLOAT32_MAX:.3g}), the precision training computes in; give a smaller {named('lr')}",
        )
        self.eval_schedule  # noqa: B018 (validates)
        need(
            not (self.checkpoint_every and self.timing_only),
            f"{named('checkpoint_every')} {self.checkpoint_every}: a "
            f"{named('timing_only')} run keeps no checkpoints (they hold the "
            f"training state); drop {named('checkpoint_every')}",
        )
        if self.checkpoint_every:
            mode, every = self.eval_schedule
            text = self.checkpoint_every.strip()
            try:
                value = float(text[:-1]) if text.endswith("s") else int(text)
            except ValueError:
                value = -1
            need(
                0 < value < math.inf,
                f"{named('checkpoint_every')} {text!r}: must be a finite "
                f"number > 0 of updates (100) or simulated seconds (5s)",
            )
            ratio = value / every
            same_unit = text.endswith("s") == (mode == "seconds")
            ok = same_unit and math.isfinite(ratio) and abs(ratio - round(ratio)) < 1e-9
            need(
                ok,
                f"{named('checkpoint_every')} {text!r}: a multiple of "
                f"{named('eval_every')} in the same unit; evaluations are every "
                f"{every:g}{'s' if mode == 'seconds' else ' updates'}"
                + (
                    f" ({named('eval_every')} auto; give {named('eval_every')} to choose)"
                    if self.eval_every.strip() == "auto"
                    else ""
                ),
            )
        if self.target_accuracy is not None:
            need(
                _positive(self.target_accuracy) and self.target_accuracy <= 1,
                f"{named('target_accuracy')} is a fraction in (0, 1], got {self.target_accuracy}",
            )
        if self.target_loss is not None:
            need(
                _positive(self.target_loss),
                f"{named('target_loss')} must be a finite number > 0, got {self.target_loss}",
            )
        need(
            _is_int(self.reference_batch) and self.reference_batch >= 0,
            f"{named('reference_batch')} must be an integer >= 0 (0: no batch_cosine), got {self.reference_batch}",
        )
        self._validate_budgets(need)

    def _validate_budgets(self, need) -> None:
        """--quality-every, --until, --budget-gradients, --divergence-loss and --validation-split."""
        if self.quality_every is not None:
            need(
                _is_int(self.quality_every) and self.quality_every >= 1,
                f"{named('quality_every')} must be an integer >= 1 (updates), got {self.quality_every}",
            )
            need(
                not self.timing_only,
                f"{named('quality_every')}: a {named('timing_only')} run computes no gradients to measure",
            )
        if self.until is not None:
            need(
                _positive(self.until),
                f"{named('until')} must be a finite number > 0 (simulated seconds), got {self.until}",
            )
        if self.budget_gradients is not None:
            need(
                _is_int(self.budget_gradients) and self.budget_gradients >= 1,
                f"{named('budget_gradients')} must be an integer >= 1, got {self.budget_gradients}",
            )
        if self.divergence_loss is not None:
            need(
                _positive(self.divergence_loss),
                f"{named('divergence_loss')} must be a finite number > 0, got {self.divergence_loss}",
            )
        if self.validation_split is not None:
            need(
                _positive(self.validation_split) and self.validation_split < 1,
                f"{named('validation_split')} is a fraction in (0, 1) of the training set, got {self.validation_split}",
            )

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """The MLP's hidden widths parsed from ``hidden``."""
        try:
            sizes = tuple(int(h) for h in self.hidden.split(",") if h.strip())
        except ValueError:
            raise InputError(
                f"{named('hidden')} {self.hidden!r}: expected widths separated by commas, e.g. 128,64"
            ) from None
        if not sizes or min(sizes) < 1:
            raise InputError(f"{named('hidden')} {self.hidden!r}: expected at least one width >= 1")
        return sizes

    @property
    def eval_schedule(self) -> tuple[str, float]:
        """``("updates", n)`` or ``("seconds", s)`` from ``eval_every``."""
        text = self.eval_every.strip()
        if text == "auto":  # about 20 evaluations over the run's budget
            if self.until is not None:
                return "seconds", self.until / 20
            if self.budget_gradients is not None:
                per_update = self.workers if strategies.get(self.strategy).barrier else 1  # about
                updates = -(-self.budget_gradients // per_update)
                steps = min(updates, self.steps) if self.steps is not None else updates
                return "updates", max(1, -(-steps // 20))
            return "updates", max(1, -(-self.steps // 20)) if self.steps else 50
        try:
            if text.endswith("s"):
                value = float(text[:-1])
                if math.isfinite(value) and value > 0:
                    return "seconds", value
            elif int(text) >= 1:
                return "updates", int(text)
        except ValueError:
            pass
        raise InputError(
            f"{named('eval_every')} {text!r}: expected a number of updates (50), simulated seconds (10s) or auto"
        )

    def to_dict(self) -> dict:
        """Plain fields, with ``None`` left out (TOML has no null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> RunConfig:
        """Build from a dict such as a loaded ``config.toml``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    def save(self, path: Path, *, comment: str = "") -> None:
        """Write ``config.toml`` (the one writer of configuration files), after a ``# comment`` line if given."""
        header = f"# {comment}\n" if comment else ""
        Path(path).write_text(header + tomli_w.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """A ``config.toml`` (``examples/NAME`` is the shipped example when no such file is here)."""
        return cls.from_dict(read_toml(path), source=str(path))
