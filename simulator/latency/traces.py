"""Measured latency traces: the canonical CSV and readers for other layouts.

Canonical CSV: header ``worker,step,duration`` (seconds) with an optional ``start`` column;
one row per gradient computation. Other layouts convert to it:

- ``pai``: Alibaba PAI mini-batch times (``,worker,gpu,time,batch_time_norm``), normalised to
  0-1000, so a time scale must be given (seconds per unit); rows repeated verbatim in the
  published files are read once;
- ``chrome``: Chrome trace event JSON (optionally gzipped) as written by the PyTorch profiler
  (``ProfilerStep#N`` spans) and by ``jax.profiler`` (events whose ``args`` carry ``step_num``,
  from ``StepTraceAnnotation``). Each (file, pid) is a worker; the outermost span of a step is
  its duration.

Every reader rejects bad input with an :class:`InputError` naming the file, the line (or
record) and the problem.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..io.boundary import check_input_file
from ..io.errors import InputError, named
from ..io.memory import check_trace_size, trace_budget
from ..io.shipped import shipped, shipped_if_missing

FORMATS = ("csv", "pai", "chrome")
_PYTORCH_STEP = re.compile(r"ProfilerStep#(\d+)$")
_PAI_COLUMNS = ("worker", "time", "batch_time_norm")  # what the PAI reader needs of its header
MAX_LINE = 1 << 20  # bytes of one CSV line; a row is under 100 (a file without line breaks is not a table)


@dataclass(frozen=True)
class Trace:
    """Columns of a trace, sorted by (worker, step). Workers are numbered 0..K-1.

    Attributes:
        worker, step: integer arrays.
        duration: seconds.
        start: seconds, or None when the source did not record it.
        source: where it was read from.
    """

    worker: np.ndarray
    step: np.ndarray
    duration: np.ndarray
    start: np.ndarray | None
    source: str

    @property
    def n_workers(self) -> int:
        return int(self.worker.max()) + 1 if len(self.worker) else 0

    def per_worker(self) -> list[np.ndarray]:
        """Each worker's durations in step order."""
        bounds = np.searchsorted(self.worker, np.arange(self.n_workers + 1))
        return [self.duration[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    def rounded(self, digits: int = 15) -> Trace:
        """This trace with its times at ``digits`` significant digits, so a unit conversion's last-bit
        noise is dropped (476 × 0.001 s is 0.47600000000000003 in binary; written, it reads 0.476)."""

        def short(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.array([float(f"{v:.{digits}g}") for v in values.tolist()])

        return replace(self, duration=short(self.duration), start=short(self.start))

    def write_csv(self, path: Path) -> None:
        """Write the canonical CSV."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            if self.start is None:
                f.write("worker,step,duration\n")
                f.writelines(
                    f"{w},{s},{d!r}\n"
                    for w, s, d in zip(self.worker.tolist(), self.step.tolist(), self.duration.tolist(), strict=True)
                )
            else:
                f.write("worker,step,duration,start\n")
                f.writelines(
                    f"{w},{s},{d!r},{t!r}\n"
                    for w, s, d, t in zip(
                        self.worker.tolist(),
                        self.step.tolist(),
                        self.duration.tolist(),
                        self.start.tolist(),
                        strict=True,
                    )
                )
        tmp.replace(path)


def combine(traces: list[Trace]) -> Trace:
    """Several traces as one, their workers numbered one after the other."""
    if len(traces) == 1:
        return traces[0]
    offsets = np.cumsum([0] + [t.n_workers for t in traces[:-1]])
    starts = [t.start for t in traces]
    return Trace(
        np.concatenate([t.worker + o for t, o in zip(traces, offsets, strict=True)]),
        np.concatenate([t.step for t in traces]),
        np.concatenate([t.duration for t in traces]),
        None if any(s is None for s in starts) else np.concatenate(starts),
        ", ".join(t.source for t in traces),
    )


def read_trace(path: str | Path, fmt: str = "csv", time_scale: float = 1.0) -> Trace:
    """Read a trace in format ``fmt`` and scale its times by ``time_scale`` (seconds per unit).

    Results are cached by (path, modification time, format, scale): a run that parses its
    latency SPEC twice reads the file once.

    Raises:
        InputError: unreadable file or malformed content, naming file and line or record.
    """
    if fmt not in FORMATS:
        raise InputError(f"{named('trace_format')}: unknown trace format {fmt!r} (choose from {', '.join(FORMATS)})")
    if not (isinstance(time_scale, int | float) and math.isfinite(time_scale) and time_scale > 0):
        raise InputError(f"{named('time_scale')} must be a finite number > 0, got {time_scale}")
    path = shipped_if_missing(Path(path))
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise InputError(f"{path}: cannot read trace: {err.strerror}") from None
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a trace file")
    check_input_file(path)  # a FIFO would block, /dev/zero never end
    check_trace_size(path, path.stat().st_size, fmt)  # a file larger than memory allows is refused unread
    return _read_cached(str(path), mtime, fmt, float(time_scale))


def shipped_trace(name: str) -> Path:
    """The path of a trace shipped with the package: ``name`` relative to the repository's ``traces/``
    (e.g. ``pai-mini-batch-time/job_1_norm.csv``), installed as package data."""
    return shipped("traces", name)


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime: int, fmt: str, time_scale: float) -> Trace:
    reader = {"csv": _read_canonical, "pai": _read_pai, "chrome": _read_chrome}[fmt]
    return reader(Path(path), time_scale)


def _lines_of(path: Path) -> tuple[str, np.ndarray | None]:
    """The header line, and the physical line numbers of the data rows if blank lines would
    otherwise shift them (None when there are none)."""
    _check_line_length(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise InputError(f"{path}: cannot read trace: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise InputError(f"{path}: empty trace file")
    header, _, body = text.partition("\n")
    header = header.strip().lstrip("\ufeff")
    if not body.strip():
        raise InputError(f"{path}: no data rows after the header")
    if "\n\n" not in text.replace("\r\n", "\n"):
        return header, None
    lines = text.replace("\r\n", "\n").split("\n")[1:]
    return header, np.flatnonzero([bool(line.strip()) for line in lines]) + 2


def _check_line_length(path: Path) -> None:
    """Refuse a CSV with a line longer than ``MAX_LINE`` bytes, reading no further than that line."""
    line, run = 1, 0  # the line being read, its bytes so far
    try:
        with open(path, "rb") as f:
            while chunk := f.read(MAX_LINE):
                first = chunk.find(b"\n")
                if first < 0:
                    run += len(chunk)
                elif run + first > MAX_LINE:
                    break
                else:
                    line += chunk.count(b"\n")
                    run = len(chunk) - chunk.rfind(b"\n") - 1
                if run > MAX_LINE:
                    break
            else:
                return
    except OSError as err:
        raise InputError(f"{path}: cannot read trace: {err.strerror}") from None
    raise InputError(f"{path}:{line}: a line longer than {MAX_LINE:,} bytes; a trace is a CSV of short rows")


def _load_columns(path: Path, usecols: list[int], n_columns: int) -> np.ndarray:
    """Vectorised numeric parsing (NumPy's C reader), errors mapped to file:line."""
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=usecols, ndmin=2, comments=None, dtype=np.float64)
    except ValueError as err:
        message = str(err)
        row = re.search(r"at row (\d+)", message)
        if "could not convert" in message:  # NumPy counts these rows from 0 after the header
            where = f"{path}:{int(row.group(1)) + 2}" if row else str(path)
            what = re.sub(r" at row \d+(, column \d+)?\.?", "", message)
        else:  # and these from 1
            where = f"{path}:{int(row.group(1)) + 1}" if row else str(path)
            what = f"wrong number of fields (the header has {n_columns})"
        raise InputError(f"{where}: {what}") from None
    return data


def _line_of(line_numbers: np.ndarray | None):
    """Data row i -> its line in the file (the header is line 1)."""
    return lambda i: int(line_numbers[i]) if line_numbers is not None else i + 2


def _check(path: Path, line, integers: dict[str, np.ndarray], positive: tuple[str, np.ndarray]) -> None:
    """Integer columns must hold integers >= 0, and the time column finite numbers > 0."""
    for name, values in integers.items():
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values != np.floor(values)))
        if len(bad):
            raise InputError(f"{path}:{line(bad[0])}: {name} must be an integer >= 0, got {values[bad[0]]:g}")
    name, values = positive
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if len(bad):
        raise InputError(f"{path}:{line(bad[0])}: {name} must be a finite number > 0, got {values[bad[0]]:g}")


def _read_canonical(path: Path, time_scale: float) -> Trace:
    header, line_numbers = _lines_of(path)
    columns = [c.strip() for c in header.split(",")]
    missing = [c for c in ("worker", "step", "duration") if c not in columns]
    if missing:
        pai = all(c in columns for c in _PAI_COLUMNS)
        hint = "it looks like a PAI file: pass --format pai" if pai else "header must have worker,step,duration[,start]"
        raise InputError(f"{path}:1: missing column {missing[0]!r} ({hint})")
    names = ["worker", "step", "duration"] + (["start"] if "start" in columns else [])
    data = _load_columns(path, [columns.index(n) for n in names], len(columns))
    line = _line_of(line_numbers)
    worker, step, duration = data[:, 0], data[:, 1], data[:, 2]
    _check(path, line, {"worker": worker, "step": step}, ("duration", duration))
    start = data[:, 3] * time_scale if len(names) == 4 else None
    if start is not None:
        bad = np.flatnonzero(~np.isfinite(start))
        if len(bad):
            raise InputError(f"{path}:{line(bad[0])}: start must be a finite number, got {data[bad[0], 3]:g}")
    return _assemble(path, worker.astype(np.int64), step.astype(np.int64), duration * time_scale, start, line)


def _assemble(path, worker, step, duration, start, line) -> Trace:
    """Sort by (worker, step), reject duplicates, renumber workers 0..K-1."""
    order = np.lexsort((step, worker))
    w, s = worker[order], step[order]
    dup = np.flatnonzero((w[1:] == w[:-1]) & (s[1:] == s[:-1]))
    if len(dup):
        first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise InputError(
            f"{path}:{line(second)}: duplicate (worker {w[dup[0]]}, step {s[dup[0]]}), first seen at line {line(first)}"
        )
    _, dense = np.unique(w, return_inverse=True)
    return Trace(dense.astype(np.int64), s, duration[order], None if start is None else start[order], str(path))


def _read_pai(path: Path, time_scale: float) -> Trace:
    """PAI mini-batch-time CSV: ``,worker,gpu,time,batch_time_norm`` (``time`` is the iteration)."""
    header, line_numbers = _lines_of(path)
    columns = [c.strip() for c in header.split(",")]
    missing = [c for c in _PAI_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"{path}:1: missing column {missing[0]!r} (PAI layout: ,worker,gpu,time,batch_time_norm)")
    data = _load_columns(path, [columns.index(c) for c in ("worker", "time", "batch_time_norm")], len(columns))
    line = _line_of(line_numbers)
    worker, step, value = data[:, 0], data[:, 1], data[:, 2]
    _check(path, line, {"worker": worker, "time": step}, ("batch_time_norm", value))
    # The published files repeat a few rows verbatim (job 2: worker 3 at iteration 2381);
    # an exact repeat is one measurement recorded twice, so keep the first. Conflicting
    # repeats remain an error in _assemble.
    keep = _first_of_exact_repeats(np.column_stack([worker, step, value]))
    rows = np.flatnonzero(keep)

    def kept_line(i: int) -> int:
        return line(int(rows[i]))

    return _assemble(
        path, worker[keep].astype(np.int64), step[keep].astype(np.int64), value[keep] * time_scale, None, kept_line
    )


def _first_of_exact_repeats(rows: np.ndarray) -> np.ndarray:
    """A mask keeping the first occurrence of every distinct row."""
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.zeros(len(rows), bool)
    keep[first] = True
    return keep


def load_chrome(path: Path) -> tuple[object, list]:
    """The parsed document of a Chrome trace event JSON file (gzipped or not) and its event list.

    The document is ``{"traceEvents": [...], ...}`` or a bare list of events. A gzipped file is
    decompressed no further than memory allows (the caller checks the file's own size first).

    Raises:
        InputError: unreadable file, malformed JSON, or no list of events, naming the file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            budget = trace_budget("chrome")
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as g:
                raw = g.read(budget + 1)  # no more than memory allows, however well it compresses
            check_trace_size(path, len(raw), "chrome", least=len(raw) > budget)
        doc = json.loads(raw)
    except (OSError, EOFError) as err:  # EOFError: a truncated gzip
        raise InputError(f"{path}: cannot read trace: {err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f"line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else "bytes"
        raise InputError(f"{path}: malformed JSON at {where}: {getattr(err, 'msg', err)}") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise InputError(f"{path}: expected a JSON list of trace events or an object with 'traceEvents'")
    return doc, events


def _read_chrome(path: Path, time_scale: float) -> Trace:
    """Chrome trace event JSON (``{"traceEvents": [...]}`` or a bare list), gzipped or not.

    A step event is a complete event (``"ph": "X"``) named ``ProfilerStep#N`` (PyTorch) or
    carrying ``args.step_num`` (jax.profiler's ``StepTraceAnnotation``). Times are in
    microseconds; ``time_scale`` multiplies the result in seconds.
    """
    events = load_chrome(path)[1]
    best: dict[tuple, tuple[float, float, int]] = {}  # (pid, step) -> (dur, ts, record)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        name = str(ev.get("name", ""))
        match = _PYTORCH_STEP.match(name)
        args = ev.get("args") if isinstance(ev.get("args"), dict) else {}
        if match:
            step = int(match.group(1))
        elif "step_num" in args:
            try:
                step = int(args["step_num"])
            except (TypeError, ValueError):
                raise InputError(f"{path}: record {i}: step_num is not an integer: {args['step_num']!r}") from None
        else:
            continue
        try:
            dur, ts = float(ev["dur"]), float(ev["ts"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: record {i} ({name}): needs numeric 'ts' and 'dur'") from None
        if not (math.isfinite(dur) and dur > 0 and math.isfinite(ts)):
            raise InputError(f"{path}: record {i} ({name}): duration must be a finite number > 0, got {dur:g}")
        key = (str(ev.get("pid", 0)), step)
        if key not in best or dur > best[key][0]:  # the outermost span of a step
            best[key] = (dur, ts, i)
    if not best:
        raise InputError(f"{path}: no step events (ProfilerStep#N spans or events with args.step_num)")
    pids = sorted({k[0] for k in best}, key=lambda p: (len(p), p))
    keys = sorted(best, key=lambda k: (pids.index(k[0]), k[1]))
    worker = np.array([pids.index(k[0]) for k in keys], np.int64)
    step = np.array([k[1] for k in keys], np.int64)
    dur = np.array([best[k][0] for k in keys]) * 1e-6 * time_scale
    ts = np.array([best[k][1] for k in keys]) * 1e-6
    start = (ts - ts.min()) * time_scale
    return Trace(worker, step, dur, start, str(path))
