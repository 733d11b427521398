"""Strategies as plug-ins: one module per family, each class registered under its name.

A strategy subclasses :class:`Strategy` (``base.py``: the engine hooks and what the
configuration needs to know) and is registered with :func:`register`; ``--strategy`` then
accepts it, the configuration checks its options, sweeps name its runs and the fast path asks
it whether it applies. See the README's "Write your own strategy".
"""

from .base import (
    CANCEL,
    FAILURE,
    Strategy,
    cancel_unfinished,
    cancellable,
    restart_at_once,
    wait_for_update,
)
from .options import SEMANTICS, Option
from .registry import check_options, find, get, make_strategy, names, option_specs, register, unregister

# isort: off
# The built-in families register as they are imported: this order is the order of names(),
# which every message that lists the strategies shows.
from . import sync, asynchronous, softsync, dutta, ssp, deadline, adaptive

# isort: on

__all__ = [
    "CANCEL",
    "FAILURE",
    "SEMANTICS",
    "Option",
    "Strategy",
    "adaptive",
    "asynchronous",
    "cancel_unfinished",
    "cancellable",
    "check_options",
    "find",
    "deadline",
    "dutta",
    "get",
    "make_strategy",
    "names",
    "option_specs",
    "register",
    "restart_at_once",
    "softsync",
    "ssp",
    "sync",
    "unregister",
    "wait_for_update",
]
