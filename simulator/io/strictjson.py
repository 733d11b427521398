"""Every JSON this package writes is strict JSON (RFC 8259), and every CSV cell a number or empty.

Python's ``json`` writes ``Infinity`` and ``NaN`` for non-finite floats, which other readers
(``jq``, JavaScript, most JSON libraries) refuse. A run whose simulated time overflowed the float
range (a latency near 1.8e308) has such values; they are results, not errors, so the run is kept
and written honestly rather than refused:

- JSON: a non-finite number becomes ``null``, and a dictionary at the top gains a ``"non_finite"``
  entry, ``{"key": "inf: ..."}``, saying which values were not finite and why. ``json.dumps`` runs
  with ``allow_nan=False``, so nothing non-finite can slip through.
- CSV: a non-finite cell (``inf``, ``-inf``, ``nan``) is written empty, as a missing value; the
  readers of this package read an empty cell as NaN.
"""

from __future__ import annotations

import json
import math

REASONS = {
    "inf": "inf: beyond the largest float (about 1.8e308); written as null",
    "-inf": "-inf: below the lowest float (about -1.8e308); written as null",
    "nan": "nan: undefined (e.g. inf - inf or 0/0); written as null",
}
NON_FINITE_CELLS = frozenset({"inf", "-inf", "nan", "Infinity", "-Infinity", "NaN"})


def dumps(data, **kwargs) -> str:
    """``json.dumps`` with non-finite floats as ``null`` (listed under ``"non_finite"`` when ``data``
    is a dictionary) and ``allow_nan=False``; ``kwargs`` go to ``json.dumps`` (``indent``)."""
    found: dict[str, str] = {}
    clean = _finite(data, "", found)
    if found and isinstance(clean, dict):
        clean = {**clean, "non_finite": found}
    return json.dumps(clean, allow_nan=False, **kwargs)


def _finite(value, key: str, found: dict[str, str]):
    if isinstance(value, float) and not math.isfinite(value):
        found[key or "value"] = REASONS["nan" if math.isnan(value) else "inf" if value > 0 else "-inf"]
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{key}.{k}" if key else str(k), found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{key}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite_cell(value):
    """A CSV cell: a non-finite float (or its text) as empty, anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return "" if isinstance(value, str) and value in NON_FINITE_CELLS else value


def finite_lines(lines):
    """Preformatted CSV lines with their non-finite cells emptied (a line without the letters of
    ``inf`` or ``nan`` is passed through as is: the common case costs two substring tests)."""
    for line in lines:
        if "inf" in line or "nan" in line:
            cells = line.rstrip("\n").split(",")
            line = ",".join("" if c in NON_FINITE_CELLS else c for c in cells) + "\n"
        yield line
