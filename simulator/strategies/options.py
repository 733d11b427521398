"""The strategy options: each a field of ``RunConfig``, declared once with its help and its check.

A strategy lists the options it owns (``Strategy.options``); the registry fills in each option's
``strategies`` from those lists. The order of ``OPTIONS`` is the order in which they are checked
and in which their tags appear in a run's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..io.checks import is_int as _is_int
from ..io.checks import positive as _positive
from ..io.errors import named

SEMANTICS = ("tf", "drop", "cancel")  # what late workers do under backup (see sync.py)
MISPLACED = "{flag} applies to {strategy} {owners} only"  # worded by registry._misplaced, fields named


@dataclass(frozen=True)
class Option:
    """One strategy option.

    Attributes:
        field: the ``RunConfig`` field (the command line's ``--field-name``).
        type: the type of a given value (``bool``: a flag).
        metavar: how the command line shows the value (None: argparse's default).
        help: the command line's help text.
        strategies: the strategies that own it (filled in by ``registry.option_specs``).
        required: the strategies that own it need it (it has no default).
        exclusive: giving it to a strategy that does not own it is an error (False where the
            field has a default value, which cannot be told from a given one).
        stale: it belongs to every stale strategy (rather than to those that list it).
        tag: its part of a run's name: ``-{tag}{value:g}``; ``""``: the bare value right after
            the strategy's name; None: no part.
        misplaced: the error when a strategy that does not own it is given it.
        check: ``check(value, config)``: the error message when a given value is wrong, else None.
    """

    field: str
    type: type
    metavar: str | None
    help: str
    strategies: tuple[str, ...] = ()
    required: bool = False
    exclusive: bool = True
    stale: bool = False
    tag: str | None = None
    misplaced: str = MISPLACED
    check: Callable[[object, object], str | None] | None = field(default=None, repr=False)


def _semantics(value, config) -> str | None:
    if value not in SEMANTICS:
        return f"{named('semantics')}: unknown semantics {value!r} (choose from {', '.join(SEMANTICS)})"
    return None


def _k(value, config) -> str | None:
    if not (_is_int(value) and 1 <= value <= config.workers):
        return f"{named('k')} must be an integer in [1, P={config.workers}], got {value}"
    return None


def _softsync_n(value, config) -> str | None:
    if not (_is_int(value) and 1 <= value <= config.workers):
        return f"{named('softsync_n')} must be an integer in [1, {config.workers}], got {value}"
    return None


def _at_least(name: str, low: int) -> Callable[[object, object], str | None]:
    def check(value, config) -> str | None:
        return None if _is_int(value) and value >= low else f"{named(name)} must be an integer >= {low}, got {value}"

    return check


def _positive_number(name: str, unit: str = "") -> Callable[[object, object], str | None]:
    def check(value, config) -> str | None:
        return None if _positive(value) else f"{named(name)} must be a finite number > 0{unit}, got {value}"

    return check


SEMANTICS_OPTION = Option(
    "semantics",
    str,
    None,
    f"late workers under backup: {', '.join(SEMANTICS)} (default: tf)",
    tag="",
    misplaced=MISPLACED + " (for TF's SyncReplicasOptimizer without backups use {strategy} backup {backups} 0 "
    "{semantics} tf)",
    check=_semantics,
)
K = Option(
    "k",
    int,
    "K",
    "k-sync, k-batch-sync, k-async, k-batch-async: K per update",
    required=True,
    tag="K",
    check=_k,
)
SOFTSYNC_N = Option(
    "softsync_n", int, "n", "softsync: update every floor(P/n) gradients", required=True, tag="n", check=_softsync_n
)
SSP_BOUND = Option(
    "ssp_bound",
    int,
    "s",
    "ssp: clocks a worker may run ahead of the slowest",
    required=True,
    tag="s",
    check=_at_least("ssp_bound", 0),
)
DEADLINE = Option(
    "deadline",
    float,
    "SECONDS",
    "deadline: aggregate what arrived by then",
    required=True,
    tag="T",
    check=_positive_number("deadline", " (seconds)"),
)
NOISE_SCALE = Option(
    "noise_scale",
    float,
    "EXAMPLES",
    "adaptive-backup: gradient noise scale (default: workers x batch size)",
    check=_positive_number("noise_scale"),
)
ADAPT_EVERY = Option(
    "adapt_every",
    int,
    "K",
    "adaptive-backup: updates between choices",
    exclusive=False,
    check=_at_least("adapt_every", 1),
)
STALENESS_LR = Option(
    "staleness_lr",
    bool,
    None,
    "scale a gradient of staleness t > 0 by 1/t",
    stale=True,
    misplaced="{flag} applies to {listed} only",
)
STALENESS_CUTOFF = Option(
    "staleness_cutoff",
    int,
    "T",
    "async: drop gradients with staleness > T",
    tag="cut",
    check=_at_least("staleness_cutoff", 0),
)

OPTIONS = (
    SEMANTICS_OPTION,
    K,
    SOFTSYNC_N,
    SSP_BOUND,
    DEADLINE,
    NOISE_SCALE,
    ADAPT_EVERY,
    STALENESS_LR,
    STALENESS_CUTOFF,
)
