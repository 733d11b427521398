"""The machine's memory, and the largest trace file it can read: checked before a file is read.

Bytes measured as peak RSS (``core/limits.py`` estimates whole runs from the same baseline).
"""

from __future__ import annotations

import os

from .errors import InputError

BASE = 100e6  # the interpreter, NumPy, SciPy and SimPy
# Peak bytes of RSS per byte of a trace file while it is read (a 65 MB CSV: 4.0; a 46 MB Chrome JSON: 8.6),
# of its decompressed bytes for a gzipped Chrome trace.
TRACE_BYTES = {"csv": 4.5, "pai": 4.5, "chrome": 9.5}


def machine_memory() -> int:
    """Bytes of physical memory of this machine."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40  # unknown: no refusal on memory


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def trace_budget(fmt: str, *, memory: int | None = None) -> int:
    """The largest trace file (its text; decompressed for gzip) in format ``fmt`` this machine can read."""
    memory = machine_memory() if memory is None else memory
    return int(max(memory - BASE, 0) / TRACE_BYTES[fmt])


def check_trace_size(path, size: int, fmt: str, *, memory: int | None = None, least: bool = False) -> None:
    """Refuse, before reading it, a trace of ``size`` bytes (``least``: at least that many) that needs
    more memory than the machine has.

    Raises:
        InputError: naming the file, with the estimate and the machine's memory.
    """
    memory = machine_memory() if memory is None else memory
    if size <= trace_budget(fmt, memory=memory):
        return
    about = "at least" if least else "about"
    raise InputError(
        f"{path}: reading a trace of {_gb(size)} needs {about} {_gb(BASE + size * TRACE_BYTES[fmt])} of memory "
        f"(this machine has {_gb(memory)}); give a smaller trace or a part of it"
    )
