"""Per-rank PyTorch profiler traces of a Megatron-style hybrid-parallel job -> the op-level table.

Input: one Chrome trace JSON file (optionally gzipped) per rank, as ``torch.profiler`` writes it.

- **Rank.** The file's ``distributedInfo.rank`` (the profiler writes ``{"backend": "nccl", "rank": R,
  "world_size": W}``), else the number in the file name (``rank3.json``, ``trace_rank-3.json.gz``) or
  its trailing number (``worker_3.json``). Megatron's default order places a rank:
  ``rank = tp_rank + tp * (cp_rank + cp * (dp_rank + dp * stage))``. One rank represents each
  (dp_rank, stage): the one with ``tp_rank = cp_rank = 0``; the other ranks' files are read for their
  rank only.
- **Steps.** The host-side annotations ``ProfilerStep#N`` (category ``user_annotation`` or
  ``cpu_op``); the step number is N. An op belongs to the last step that starts at or before it:
  the step whose window contains it, or whose window it outlives (GPU work runs behind its launches).
  Ops before the first step are left out (they belong to a step not profiled).
- **Ops.** GPU-side annotation ranges (``gpu_user_annotation``) named exactly as an op type, as
  Megatron's timers make them with ``record_function``; ``gc`` (a host-only pause, no kernels) is
  also read from host ``user_annotation`` ranges when no GPU range has that name. An NCCL kernel in
  no such range is classified by its name: AllGather -> params-all-gather, ReduceScatter ->
  grads-reduce-scatter, AllReduce -> separate-grads-all-reduce; a p2p kernel (SendRecv, Send, Recv)
  there is an error, for its direction is unknown. Other kernels are the inside of compute ranges.
  A fused range ``forward-send-backward-recv`` (``backward-send-forward-recv``) is two ops, a
  forward-send and a backward-recv (a backward-send and a forward-recv), with its start and duration.

Assumptions: every file shares one clock (true of the ranks of one node, and of nodes whose clocks
are synchronised); times are relative to the earliest step start of the representative files. No
virtual pipeline (vpp = 1): the model chunk ``mc`` is 0 and the global chunk ``gmc`` is the stage.

Output columns (:data:`COLUMNS`): ids as integers, ``start_ts`` and ``duration`` in seconds.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from .boundary import check_input_file
from .errors import InputError
from .limits import check_trace_size
from .storage import temporary, write_text
from .traces import load_chrome

COLUMNS = ("dp_rank", "stage", "rank", "step", "optype", "start_ts", "duration", "seq_id", "mc", "gmc", "mb_id")
COMPUTE = ("forward-compute", "backward-compute")
DP_COMM = ("params-all-gather", "grads-reduce-scatter")
OPTYPES = (
    *COMPUTE,
    *("forward-send", "forward-recv", "backward-send", "backward-recv"),
    *DP_COMM,
    *("separate-grads-all-reduce", "embedding-grads-all-reduce", "layernorm-grads-all-reduce"),
    *("optimizer-clip-main-grad", "optimizer", "gc"),
)
COMBINED = {  # Megatron's fused p2p ranges -> the two ops they hold (same start and duration)
    "forward-send-backward-recv": ("forward-send", "backward-recv"),
    "backward-send-forward-recv": ("backward-send", "forward-recv"),
}
KERNELS = {  # a bare NCCL kernel's collective (lowercase, in its name) -> its op type
    "allgather": "params-all-gather",
    "reducescatter": "grads-reduce-scatter",
    "allreduce": "separate-grads-all-reduce",
}
_KERNEL_NAMES = {  # what write_profile names a bare kernel of each op type
    "params-all-gather": "ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
    "grads-reduce-scatter": "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
    "separate-grads-all-reduce": "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
}
_P2P = ("sendrecv", "send", "recv")
_STEP = re.compile(r"ProfilerStep#(\d+)$")
_HOST = ("user_annotation", "cpu_op")
_SUFFIXES = re.compile(r"(\.(gz|json|pt|trace))+$", re.IGNORECASE)
_NAME_RANK = re.compile(r"rank[-_]?(\d+)", re.IGNORECASE)
_GPU_AT, _HOST_AT = (0, 7), (1, 1)  # (pid, tid) where write_profile puts its GPU and host events


def convert_profiles(
    paths: list[Path], *, dp_size: int, pp_size: int, tp_size: int = 1, cp_size: int = 1
) -> pd.DataFrame:
    """The op-level table of a job from its per-rank profiler traces.

    Args:
        paths: Chrome trace JSON files (``.gz`` too), one per rank; at least one per (dp_rank, stage)
            with ``tp_rank = cp_rank = 0``, others are ignored.
        dp_size, pp_size, tp_size, cp_size: the job's data, pipeline, tensor and context parallel sizes.

    Returns:
        One row per op of the representative ranks, columns :data:`COLUMNS`, sorted by
        (dp_rank, stage, step, start_ts); times in seconds from the earliest step start.

    Raises:
        InputError: one line naming the file (or the missing rank) and what is wrong.
    """
    sizes = {"--dp": dp_size, "--pp": pp_size, "--tp": tp_size, "--cp": cp_size}
    for option, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{option} must be an integer >= 1, got {value!r}")
    world = dp_size * pp_size * tp_size * cp_size
    about = " x ".join(f"{o} {v}" for o, v in sizes.items()) + f" = {world}"
    files: dict[int, Path] = {}
    found: dict[int, tuple[dict, list]] = {}  # representative rank -> (steps, ops)
    for path in map(Path, paths):
        doc, events = _load(path)
        rank = _rank_of(path, doc, world, about)
        if rank in files:
            raise InputError(f"{path}: rank {rank} again (also {files[rank]}); give one file per rank")
        files[rank] = path
        if rank % (tp_size * cp_size) == 0:
            found[rank] = _read_ops(path, events)
        del doc, events
    frames = []
    for stage in range(pp_size):
        for dp_rank in range(dp_size):
            rank = tp_size * cp_size * (dp_rank + dp_size * stage)
            if rank not in found:
                raise InputError(
                    f"no trace of rank {rank} (dp_rank {dp_rank}, stage {stage}, tp_rank 0, cp_rank 0) among "
                    f"the {len(files)} files; each (dp_rank, stage) needs its file ({about})"
                )
            frames.append(_rows(found[rank], dp_rank, stage, rank))
    _check_same_steps({files[r]: set(steps) for r, (steps, _) in found.items()})
    origin = min(ts for steps, _ in found.values() for ts, _ in steps.values())
    return _table(pd.concat(frames, ignore_index=True), origin)


def _load(path: Path) -> tuple[object, list]:
    """A trace file's document and events, its size checked against memory before it is read."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InputError(f"{path}: cannot read trace: {err.strerror}") from None
    check_input_file(path)
    check_trace_size(path, size, "chrome")
    return load_chrome(path)


def _rank_of(path: Path, doc: object, world: int, about: str) -> int:
    """The global rank of a file: its distributedInfo, else the number in its name."""
    info = doc.get("distributedInfo") if isinstance(doc, dict) else None
    if isinstance(info, dict) and "rank" in info:
        rank = info["rank"]
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise InputError(f"{path}: distributedInfo.rank must be an integer >= 0, got {rank!r}")
        size = info.get("world_size")
        if size is not None and size != world:
            raise InputError(f"{path}: distributedInfo.world_size is {size!r}, but {about}")
    else:
        stem = _SUFFIXES.sub("", path.name)
        numbers = _NAME_RANK.findall(stem) or re.findall(r"(\d+)$", stem)
        if not numbers:
            raise InputError(
                f"{path}: no rank: no distributedInfo.rank in the file and no rank number in its name (rank3.json)"
            )
        rank = int(numbers[-1])
    if rank >= world:
        raise InputError(f"{path}: rank {rank} is outside a job of {about} ranks; check the sizes")
    return rank


def _read_ops(path: Path, events: list) -> tuple[dict, list]:
    """A file's steps ({N: (ts, dur)} in microseconds, the outermost span of each) and ops
    [(optype, ts, dur)] in microseconds."""
    steps: dict[int, tuple[float, float]] = {}
    ranges, host_gc, kernels = [], [], []  # (optype or kernel name, ts, dur, pid)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X" or not isinstance(ev.get("name"), str):
            continue
        name, cat = ev["name"], ev.get("cat")
        step = _STEP.match(name) if cat in _HOST else None
        gpu_op = cat == "gpu_user_annotation" and (name in OPTYPES or name in COMBINED)
        nccl = cat == "kernel" and "nccl" in name.lower()
        if not (step or gpu_op or nccl or (cat == "user_annotation" and name == "gc")):
            continue
        ts, dur = _times(path, i, name, ev)
        pid = str(ev.get("pid"))
        if step:
            n = int(step.group(1))
            if n not in steps or dur > steps[n][1]:
                steps[n] = (ts, dur)
        elif gpu_op:
            ranges.append((name, ts, dur, pid))
        elif nccl:
            kernels.append((name, ts, dur, pid))
        else:
            host_gc.append((name, ts, dur, pid))
    if not steps:
        raise InputError(f"{path}: no ProfilerStep#N annotation; profile with torch.profiler and call prof.step()")
    if not ranges and not kernels:
        raise InputError(
            f"{path}: no ops: no gpu_user_annotation range named as an op type (forward-compute, ...) and no NCCL "
            "kernel; wrap Megatron's timed regions in torch.profiler.record_function"
        )
    if not any(r[0] == "gc" for r in ranges):
        ranges += host_gc
    ops = [(op, ts, dur) for name, ts, dur, _ in ranges for op in COMBINED.get(name, (name,))]
    for name, ts, dur, _ in _outside(ranges, kernels):
        lower = name.lower()
        optype = next((op for key, op in KERNELS.items() if key in lower), None)
        if optype is not None:
            ops.append((optype, ts, dur))
        elif any(word in lower for word in _P2P):
            raise InputError(
                f"{path}: kernel {name} at ts {ts!r} us: a p2p kernel outside a named forward/backward-send/recv "
                "range: the direction is unknown"
            )
    return steps, ops


def _times(path: Path, i: int, name: str, ev: dict) -> tuple[float, float]:
    """An event's ts and dur (microseconds): finite numbers, dur >= 0."""
    try:
        ts, dur = float(ev["ts"]), float(ev["dur"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: event {i} ({name}): needs numeric 'ts' and 'dur'") from None
    if not (math.isfinite(ts) and math.isfinite(dur)):
        raise InputError(f"{path}: event {i} ({name}): ts and dur must be finite, got {ts!r} and {dur!r}")
    if dur < 0:
        raise InputError(f"{path}: event {i} ({name}): negative duration {dur!r} us")
    return ts, dur


def _outside(ranges: list, kernels: list) -> list:
    """The kernels whose start lies in no range of their pid (process: the GPU)."""
    out = []
    for pid in {k[3] for k in kernels}:
        spans = sorted((ts, ts + dur) for _, ts, dur, p in ranges if p == pid)
        starts = np.array([s for s, _ in spans])
        reach = np.maximum.accumulate([e for _, e in spans]) if spans else np.array([])  # latest end so far
        for kernel in (k for k in kernels if k[3] == pid):
            last = int(np.searchsorted(starts, kernel[1], side="right")) - 1
            if last < 0 or reach[last] < kernel[1]:
                out.append(kernel)
    return sorted(out, key=lambda k: k[1])


def _rows(found: tuple[dict, list], dp_rank: int, stage: int, rank: int) -> pd.DataFrame:
    """One representative's ops with their step (microseconds; ops before the first step dropped)."""
    steps, ops = found
    numbers = sorted(steps, key=lambda n: steps[n][0])
    starts = np.array([steps[n][0] for n in numbers])
    frame = pd.DataFrame(ops, columns=["optype", "ts", "dur"]).astype({"optype": str, "ts": float, "dur": float})
    which = np.searchsorted(starts, frame["ts"].to_numpy(), side="right") - 1
    frame = frame[which >= 0].assign(step=np.array(numbers, np.int64)[which[which >= 0]])
    return frame.assign(dp_rank=dp_rank, stage=stage, rank=rank)


def _check_same_steps(steps: dict[Path, set]) -> None:
    """Every representative file profiled the same steps."""
    common = set.intersection(*steps.values())
    for path, own in steps.items():
        if own != common:
            extra = sorted(own - common)
            raise InputError(f"{path}: steps {extra[:5]} are missing from other ranks' files; profile the same steps")


def _table(frame: pd.DataFrame, origin: float) -> pd.DataFrame:
    """The schema's columns: times in seconds from ``origin`` (microseconds), the ids derived."""
    frame = frame.assign(end=frame["ts"] + frame["dur"])
    frame = frame.sort_values(["dp_rank", "stage", "step", "ts", "end", "optype"], kind="stable", ignore_index=True)
    seq = frame.groupby(["dp_rank", "stage", "step", "optype"], sort=False).cumcount().to_numpy(np.int64)
    optype = frame["optype"].to_numpy(object)
    compute = np.isin(optype, COMPUTE)
    stage = frame["stage"].to_numpy(np.int64)
    table = pd.DataFrame(
        {
            "dp_rank": frame["dp_rank"].to_numpy(np.int64),
            "stage": stage,
            "rank": frame["rank"].to_numpy(np.int64),
            "step": frame["step"].to_numpy(np.int64),
            "optype": optype,
            "start_ts": (frame["ts"].to_numpy(np.float64) - origin) * 1e-6,
            "duration": frame["dur"].to_numpy(np.float64) * 1e-6,
            "seq_id": seq,
            "mc": np.where(compute | np.isin(optype, DP_COMM), 0, -1).astype(np.int64),
            "gmc": np.where(compute, stage, -1).astype(np.int64),
            "mb_id": np.where(compute, seq, np.where(optype == "gc", 0, -1)).astype(np.int64),
        }
    )
    return table


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Write an op table atomically: parquet for a ``.parquet`` name, else CSV.

    Raises:
        InputError: parquet without pyarrow.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() != ".parquet":
        write_text(out, table.to_csv(index=False))
        return
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(f"--out {out}: writing parquet needs pyarrow (pip install pyarrow); or give a .csv") from None
    tmp = temporary(out)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_profile(
    table: pd.DataFrame,
    path_dir: Path,
    *,
    dp_size: int,
    pp_size: int,
    tp_size: int = 1,
    cp_size: int = 1,
    kernels: Collection[str] = (),
) -> list[Path]:
    """Write an op table as the Chrome traces the profiler would: one ``rank{R}.json`` per representative.

    Each step gets a host ``ProfilerStep#N`` window from its first op's start to its last op's end; each
    op a GPU range (``gc`` a host range), with an NCCL kernel inside send/recv ranges and a GEMM inside
    compute ranges; the op types in ``kernels`` (keys of :data:`_KERNEL_NAMES`) are bare NCCL kernels
    instead, for the classifier.

    Args:
        table: columns :data:`COLUMNS` (at least dp_rank, stage, step, optype, start_ts, duration),
            times in seconds on one clock (a rank's steps must not interleave).

    Returns:
        The files written, by rank.

    Raises:
        ValueError: a bare kernel asked of an op type without one, or steps that interleave in time.
    """
    if unknown := set(kernels) - set(_KERNEL_NAMES):
        raise ValueError(f"no bare kernel for {sorted(unknown)}; choose from {sorted(_KERNEL_NAMES)}")
    path_dir = Path(path_dir)
    path_dir.mkdir(parents=True, exist_ok=True)
    world = dp_size * pp_size * tp_size * cp_size
    written = []
    for (dp_rank, stage), ops in table.groupby(["dp_rank", "stage"]):
        rank = tp_size * cp_size * (int(dp_rank) + dp_size * int(stage))
        spans = ops.groupby("step").agg(first=("start_ts", "min"), last=("start_ts", "max")).sort_values("first")
        if (spans["first"].to_numpy()[1:] <= spans["last"].to_numpy()[:-1]).any():
            raise ValueError(f"rank {rank}: steps interleave in time; give each step its own stretch of the clock")
        events = []
        for step, group in ops.groupby("step"):
            start, end = group["start_ts"].min(), (group["start_ts"] + group["duration"]).max()
            events.append(_event(f"ProfilerStep#{step}", "user_annotation", start, end - start, host=True))
        for optype, start, duration in zip(ops["optype"], ops["start_ts"], ops["duration"], strict=True):
            events += _op_events(str(optype), float(start), float(duration), kernels)
        doc = {
            "schemaVersion": 1,
            "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": world},
            "traceEvents": events,
        }
        path = path_dir / f"rank{rank}.json"
        write_text(path, json.dumps(doc))
        written.append(path)
    return written


def _op_events(optype: str, start: float, duration: float, kernels: Collection[str]) -> list[dict]:
    """The trace events of one op (times in seconds)."""
    if optype in kernels:
        return [_event(_KERNEL_NAMES[optype], "kernel", start, duration)]
    if optype == "gc":
        return [_event("gc", "user_annotation", start, duration, host=True)]
    events = [_event(optype, "gpu_user_annotation", start, duration)]
    if optype.endswith(("-send", "-recv")):
        events.append(_event("ncclDevKernel_SendRecv(ncclDevComm*, ncclWork*)", "kernel", start, duration))
    elif optype in COMPUTE:
        events.append(_event("sm90_xmma_gemm_bf16bf16_bf16f32", "kernel", start, duration))
    return events


def _event(name: str, cat: str, start: float, duration: float, host: bool = False) -> dict:
    pid, tid = _HOST_AT if host else _GPU_AT
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": start * 1e6, "dur": duration * 1e6}
