"""Value checks shared by the configuration and the strategies' options (a leaf: imports nothing)."""

from __future__ import annotations

import math


def is_int(x) -> bool:
    """An integer, and not a bool."""
    return isinstance(x, int) and not isinstance(x, bool)


def positive(x) -> bool:
    """A finite number > 0 (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def finite_nonneg(x) -> bool:
    """A finite number >= 0."""
    return isinstance(x, int | float) and math.isfinite(x) and x >= 0
