"""Figures sized for a paper, log axes for worker counts, and the mark of a diverged point.

``--figsize column`` draws a figure 3.4 inches wide with 8 pt text, ``page`` 7 inches with 9 pt
(a two-column paper's column and page widths); without it every figure keeps its screen size.
Matplotlib loads only to draw (``figures._pyplot``).
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from dataclasses import dataclass

from ..io.errors import InputError, named

WIDTHS = {"column": 3.4, "page": 7.0}  # inches
POINTS = {"column": 8.0, "page": 9.0}  # the text size readable at that width
SPAN = 8  # worker counts spanning more than this factor get a log axis
DIVERGED = "diverged (×: seeds diverged/seeds)"


@dataclass(frozen=True)
class FigureSize:
    """A figure's width and text sizes: ``name`` "column", "page", or None for the screen sizes."""

    name: str | None = None

    @classmethod
    def of(cls, name: str | None) -> FigureSize:
        """Raises InputError naming ``figsize`` for anything but None, "column" or "page"."""
        if name is not None and name not in WIDTHS:
            raise InputError(f"{named('figsize')} {name}: give {' or '.join(WIDTHS)}")
        return cls(name)

    @property
    def paper(self) -> bool:
        return self.name is not None

    def size(self, width: float, height: float) -> tuple[float, float]:
        """(width, height) in inches: as given on screen; for a paper, its width at the same aspect."""
        if not self.paper:
            return width, height
        return WIDTHS[self.name], height * WIDTHS[self.name] / width

    def font(self, screen: float) -> float:
        """A text size in points: ``screen`` on screen; the paper size's, 1 pt less for small text."""
        if not self.paper:
            return screen
        return POINTS[self.name] - (1.0 if screen < 9 else 0.0)

    def wrap(self, text: str, width: float) -> str:
        """``text`` with each line wrapped to a paper figure's ``width`` (inches) at its text size."""
        if not self.paper:
            return text
        chars = int(width * 72 / (0.52 * POINTS[self.name]))  # an average glyph: about half the size
        return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in text.splitlines())

    def rc(self):
        """A context in which Matplotlib's default text sizes are this size's (nothing on screen)."""
        if not self.paper:
            return contextlib.nullcontext()
        import matplotlib  # here, not at import: Matplotlib loads only to draw (see figures._pyplot)

        text, small = POINTS[self.name], POINTS[self.name] - 1
        return matplotlib.rc_context(
            {
                "font.size": text,
                "axes.titlesize": text,
                "axes.labelsize": text,
                "figure.titlesize": text,
                "xtick.labelsize": small,
                "ytick.labelsize": small,
                "legend.fontsize": small,
                "legend.title_fontsize": small,
                "lines.markersize": 4,
            }
        )


def spans_octaves(values) -> bool:
    """Are ``values`` all positive numbers spanning more than a factor of ``SPAN``?"""
    numbers = [float(v) for v in values]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) > SPAN


def log2_axis(ax, values, *, axis: str = "x") -> None:
    """A base-2 log axis whose ticks are labelled with the values themselves (1, 4, 16, 64), not 2^k:
    at each value when there are at most 12, else at the powers of two in their range."""
    from matplotlib.ticker import FixedLocator, NullFormatter  # here, not at import: see the module docstring

    values = sorted({float(v) for v in values})
    if len(values) > 12:
        low, high = math.floor(math.log2(values[0])), math.ceil(math.log2(values[-1]))
        values = [2.0**k for k in range(low, high + 1)]
    side = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
    side.set_major_locator(FixedLocator(values))
    side.set_ticklabels([f"{v:g}" for v in values])
    side.set_minor_formatter(NullFormatter())


def mark_diverged(ax, x: float, diverged: int, seeds: int, colour, size: FigureSize) -> object:
    """An × at the bottom of the panel at ``x``, labelled ``diverged/seeds``: a point whose seeds
    diverged (all of them: it has no value to draw). Returns the marker for a legend."""
    where = ax.get_xaxis_transform()  # x in data, y in axes fraction: inside the panel whatever the data
    (mark,) = ax.plot([x], [0.04], "x", color=colour, ms=7, mew=1.6, transform=where, clip_on=False)
    label = f"{diverged}/{seeds}"
    ax.annotate(label, (x, 0.04), xycoords=where, xytext=(4, 3), textcoords="offset points", fontsize=size.font(7))
    return mark


def diverged_handle():
    """The legend entry of ``mark_diverged``'s marks."""
    from matplotlib.lines import Line2D  # here, not at import: see the module docstring

    return Line2D([], [], color="black", marker="x", ls="none", ms=7, mew=1.6, label=DIVERGED)
