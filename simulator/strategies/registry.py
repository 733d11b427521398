"""The registry of strategies: what ``--strategy`` accepts, in order, and the options they own.

The configuration, the command line, sweeps' run names and the fast path read it; nothing
else names a strategy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..io.errors import InputError, named
from .base import Strategy
from .options import OPTIONS, Option

_STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Make ``cls`` the strategy ``cls.name`` (use as a class decorator); names list in the
    order they were registered."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if _STRATEGIES.get(cls.name, cls) is not cls:
        raise ValueError(f"strategy {cls.name!r} is registered already ({_STRATEGIES[cls.name].__name__})")
    _STRATEGIES[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    del _STRATEGIES[name]


def names() -> tuple[str, ...]:
    return tuple(_STRATEGIES)


def find(name) -> type[Strategy] | None:
    """The strategy registered as ``name``, or None (a configuration not yet validated)."""
    try:
        return _STRATEGIES.get(name)
    except TypeError:
        return None


def get(name: str) -> type[Strategy]:
    """The strategy registered as ``name``.

    Raises:
        InputError: no strategy has that name.
    """
    strategy = find(name)
    if strategy is None:
        raise InputError(f"{named('strategy')}: unknown strategy {name!r} (choose from {', '.join(_STRATEGIES)})")
    return strategy


def make_strategy(config) -> Strategy:
    """The strategy object a (validated) ``RunConfig`` asks for."""
    return get(config.strategy).from_config(config)


def option_specs() -> tuple[Option, ...]:
    """Every strategy option, with the strategies that own it, in the order they are checked."""
    return tuple(replace(o, strategies=tuple(n for n, s in _STRATEGIES.items() if s.owns(o))) for o in OPTIONS)


def check_options(config, fields: Iterable[str]) -> None:
    """Check the named options of ``config`` against its strategy: first that the strategy has
    each option it needs and none that belongs to others, then each given value.

    Raises:
        InputError: the first problem, naming the option.
    """
    strategy = get(config.strategy)
    chosen = [o for o in option_specs() if o.field in set(fields)]
    for o in chosen:
        if o.required:
            given = getattr(config, o.field) is not None
            if strategy.owns(o) and not given:
                raise InputError(f"{named('strategy')} {strategy.name} needs {named(o.field)}")
            if given and not strategy.owns(o):
                raise InputError(_misplaced(o))
    for o in chosen:
        value = getattr(config, o.field)
        if value is None or value is False:
            continue
        if o.exclusive and not o.required and not strategy.owns(o):
            raise InputError(_misplaced(o))
        message = o.check(value, config) if o.check is not None else None
        if message is not None:
            raise InputError(message)


def _misplaced(o: Option) -> str:
    fields = {name: named(name) for name in ("strategy", "backups", "semantics")}
    return o.misplaced.format(
        flag=named(o.field), owners=" / ".join(o.strategies), listed=", ".join(o.strategies), **fields
    )
