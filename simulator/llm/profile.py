"""Per-rank PyTorch profiler traces of a Megatron-style hybrid-parallel job -> the op-level table.

Input: one Chrome trace JSON file (optionally gzipped) per rank, as ``torch.profiler`` writes it.

- **Rank.** The file's ``distributedInfo.rank`` (the profiler writes ``{"backend": "nccl", "rank": R,
  "world_size": W}``), else the number in the file name (``rank3.json``, ``trace_rank-3.json.gz``) or
  its trailing number (``worker_3.json``). Megatron's default order places a rank:
  ``rank = tp_rank + tp * (cp_rank + cp * (dp_rank + dp * stage))``. One rank represents each
  (dp_rank, stage): the one with ``tp_rank = cp_rank = 0``; the other ranks' files are read for their
  rank only.
- **Steps.** The annotations ``ProfilerStep#N``; the step number is N. CUDA runs behind the host, so
  a GPU op is placed by, in order of preference: the GPU-side ``ProfilerStep#N`` ranges
  (``gpu_user_annotation``, written by recent PyTorch), when the file has them; else the host-side
  window (``user_annotation`` or ``cpu_op``) holding its launch, the host event (``cuda_runtime``,
  ``cuda_driver``) with the op's ``args.correlation``; else its own start on the host windows. An op
  belongs to the last step that starts at or before that time (the step whose window holds it, or
  whose window it outlives); ops before the first step are left out (a step not profiled). Every
  step of every rank of a stage must then hold the same ops, or the file is refused.
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

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.boundary import check_input_file
from ..io.errors import InputError
from ..io.memory import check_trace_size
from ..latency.traces import load_chrome
from . import pytorch, runs
from .trace import COLUMNS, COMPUTE, OPTYPES  # noqa: F401 (COLUMNS: the output's, re-exported)

DP_COMM = ("params-all-gather", "grads-reduce-scatter")  # the model chunk (mc) is recorded for these and compute
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
_NAMED = {*OPTYPES, *COMBINED} - {"gc"}  # gc: a host range of any trace
_HOST = ("user_annotation", "cpu_op")
_LAUNCH = ("cuda_runtime", "cuda_driver")  # host events that launch GPU work (cudaLaunchKernel, ...)
_LAGS = (
    "GPU work may have been assigned to the wrong ProfilerStep (the GPU lags the host); every step of a stage "
    "must run the same ops (profile with a PyTorch that writes GPU-side ProfilerStep ranges, or keep correlation ids)"
)
_SUFFIXES = re.compile(r"(\.(gz|json|pt|trace))+$", re.IGNORECASE)
_NAME_RANK = re.compile(r"rank[-_]?(\d+)", re.IGNORECASE)


def convert_profiles(
    paths: list[Path],
    *,
    dp_size: int,
    pp_size: int,
    tp_size: int = 1,
    cp_size: int = 1,
    step_range: str | None = None,
    trust_clocks: bool = False,
) -> pd.DataFrame:
    """The op table of a job from its per-rank profiler traces.

    Args:
        paths: Chrome trace JSON files (``.gz`` too), one per rank; at least one per (dp_rank, stage)
            with ``tp_rank = cp_rank = 0``, others are read for their rank and steps only.
        dp_size, pp_size, tp_size, cp_size: the job's data, pipeline, tensor and context parallel sizes.
        step_range: the name of the range that marks a step (numbered in order), instead of
            ``ProfilerStep#N``.
        trust_clocks: accept steps whose windows do not overlap across ranks (clocks known to be skewed).

    Returns:
        One row per op of the representative ranks, columns :data:`COLUMNS`, sorted by
        (dp_rank, stage, step, start_ts); times in seconds from the earliest step start. Plain PyTorch
        traces (no op named the Megatron way) are read by observation (:mod:`.pytorch`).

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
    windows: dict[Path, dict] = {}
    infos: dict[Path, object] = {}
    # representative rank -> ("megatron", (steps, ops)) or ("observed", steps)
    found: dict[int, tuple[str, object]] = {}
    for path in map(Path, paths):
        doc, events = _load(path)
        rank = _rank_of(path, doc, world, about)
        if rank in files:
            raise InputError(f"{path}: rank {rank} again (also {files[rank]}); give one file per rank")
        files[rank], infos[path] = path, doc.get("distributedInfo") if isinstance(doc, dict) else None
        windows[path] = step_windows(path, events, step_range)
        if rank % (tp_size * cp_size) == 0:
            plain = None if _named_ops(events) else pytorch.plain_kind(events)
            if plain == "cpu":
                found[rank] = ("observed", pytorch.read_steps(path, events, windows[path]))
            elif plain == "gpu":
                raise InputError(
                    f"{path}: a GPU trace with no Megatron-named ranges: plain PyTorch traces are read on the CPU "
                    "side only, not yet from CUDA streams; name the regions with record_function (docs/whatif.md)"
                )
            else:
                found[rank] = ("megatron", _read_ops(path, events, windows[path], step_range is not None))
        del doc, events
    runs.check_same_run(windows, infos, trust_clocks=trust_clocks)
    schedules = {kind for kind, _ in found.values()}
    if len(schedules) > 1:
        native = next(files[r] for r, (k, _) in found.items() if k == "observed")
        named = next(files[r] for r, (k, _) in found.items() if k == "megatron")
        raise InputError(f"{named}: has Megatron-named op ranges but {native} has none; profile every rank alike")
    skip = pytorch.leading_to_skip(found, dp_size, pp_size, tp_size * cp_size) if schedules == {"observed"} else set()
    frames = []
    for stage in range(pp_size):
        stage_ranks = []
        for dp_rank in range(dp_size):
            rank = tp_size * cp_size * (dp_rank + dp_size * stage)
            if rank not in found:
                raise InputError(
                    f"no trace of rank {rank} (dp_rank {dp_rank}, stage {stage}, tp_rank 0, cp_rank 0) among "
                    f"the {len(files)} files; each (dp_rank, stage) needs its file ({about})"
                )
            stage_ranks.append((dp_rank, rank))
            if found[rank][0] == "megatron":
                frames.append(_rows(found[rank][1], dp_rank, stage, rank))
        if found[stage_ranks[0][1]][0] == "observed":
            frames.append(pytorch.stage_rows(found, files, stage_ranks, stage, pp_size, skip))
    origin = min(ts for path in (files[r] for r in found) for ts, _, _ in windows[path].values())
    table = _table(pd.concat(frames, ignore_index=True), origin)
    _check_same_ops(table, files)
    table.attrs["schedule"] = schedules.pop()
    table.attrs["left_out"] = sorted(skip)
    return table


def step_windows(path: Path, events: list, step_range: str | None) -> dict[int, tuple[float, float, object]]:
    """A file's steps: ``{N: (ts, dur, tid)}`` (microseconds) of its outermost ``ProfilerStep#N`` host
    ranges, or of the ranges named ``step_range`` (numbered 0, 1, ... in time order)."""
    found: dict[int, tuple[float, float, object]] = {}
    named = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X" or ev.get("cat") not in _HOST:
            continue
        name = ev.get("name")
        if step_range is not None:
            if name == step_range:
                named.append((*_times(path, i, name, ev), ev.get("tid")))
        elif isinstance(name, str) and (step := _STEP.match(name)):
            n, (ts, dur) = int(step.group(1)), _times(path, i, name, ev)
            if n not in found or dur > found[n][1]:
                found[n] = (ts, dur, ev.get("tid"))
    if step_range is not None:
        if not named:
            raise InputError(f"{path}: no range named {step_range!r} (--step-range): name the step's record_function")
        return {n: w for n, w in enumerate(sorted(named, key=lambda w: w[0]))}
    if not found:
        raise InputError(
            f"{path}: no ProfilerStep#N marker: torch.profiler writes step markers only with a schedule=; profile "
            "with `profile(..., schedule=torch.profiler.schedule(wait=1, warmup=1, active=4, repeat=1))` and call "
            "`prof.step()` after every step (or give --step-range NAME of a range around each step)"
        )
    return found


def _named_ops(events: list) -> bool:
    """Whether a trace holds a range named as an op type (Megatron's timers)."""
    return any(
        isinstance(ev, dict)
        and ev.get("cat") in ("gpu_user_annotation", "user_annotation")
        and ev.get("name") in _NAMED
        for ev in events
    )


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


def _read_ops(path: Path, events: list, windows: dict, named_steps: bool) -> tuple[dict, list]:
    """A file's steps ({"host": {N: (ts, dur)}, "gpu": {N: (ts, dur)}} in microseconds: the outermost span
    of each; host: ``windows``) and ops [(optype, ts, dur, clock, at)]: the steps of ``clock`` hold the op
    that starts (or was launched) at ``at``. Op ranges are GPU-side; in a trace with no GPU activity,
    host-side (``user_annotation``)."""
    steps: dict[str, dict[int, tuple[float, float]]] = {"host": {n: w[:2] for n, w in windows.items()}, "gpu": {}}
    gpu = any(isinstance(ev, dict) and ev.get("cat") in ("kernel", "gpu_user_annotation") for ev in events)
    op_cat = "gpu_user_annotation" if gpu else "user_annotation"
    ranges, host_gc, kernels = [], [], []  # (optype or kernel name, ts, dur, pid, correlation id)
    launches: dict[object, float] = {}  # correlation id -> the host time of the launch
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or ev.get("ph") != "X" or not isinstance(ev.get("name"), str):
            continue
        name, cat = ev["name"], ev.get("cat")
        step = _STEP.match(name) if cat == "gpu_user_annotation" and not named_steps else None
        gpu_op = cat == op_cat and (name in OPTYPES or name in COMBINED)
        nccl = cat == "kernel" and "nccl" in name.lower()
        args = ev.get("args")
        corr = args.get("correlation") if isinstance(args, dict) else None
        corr = corr if isinstance(corr, int) and not isinstance(corr, bool) else None  # ids are integers
        launch = cat in _LAUNCH and corr is not None
        if not (step or gpu_op or nccl or launch or (cat == "user_annotation" and name == "gc")):
            continue
        ts, dur = _times(path, i, name, ev)
        if launch:
            launches[corr] = ts
        elif step:
            n, own = int(step.group(1)), steps["gpu"]
            if n in own:  # one range per stream: their union
                start = min(own[n][0], ts)
                own[n] = (start, max(own[n][0] + own[n][1], ts + dur) - start)
            else:
                own[n] = (ts, dur)
        elif gpu_op and not gpu:  # a host range: placed by its own start on the host's steps
            ranges.append((name, ts, dur, "host", None))
        else:
            (ranges if gpu_op else kernels if nccl else host_gc).append((name, ts, dur, str(ev.get("pid")), corr))
    if not ranges and not kernels:
        raise InputError(
            f"{path}: no ops: no gpu_user_annotation range named as an op type (forward-compute, ...) and no NCCL "
            "kernel, nor plain PyTorch collectives; wrap Megatron's timed regions in torch.profiler.record_function"
        )
    if not any(r[0] == "gc" for r in ranges):
        ranges += [(*r, "host") for r in host_gc]
    gpu_ops = [(op, *r[1:]) for r in ranges for op in COMBINED.get(r[0], (r[0],))]  # (host gc marked)
    for name, ts, dur, pid, corr in _outside(ranges, kernels):
        lower = name.lower()
        optype = next((op for key, op in KERNELS.items() if key in lower), None)
        if optype is not None:
            gpu_ops.append((optype, ts, dur, pid, corr))
        elif any(word in lower for word in _P2P):
            raise InputError(
                f"{path}: kernel {name} at ts {ts!r} us: a p2p kernel outside a named forward/backward-send/recv "
                "range: the direction is unknown"
            )
    ops = []
    for optype, ts, dur, pid, corr, *host in gpu_ops:
        if host or pid == "host":  # a host-side range
            ops.append((optype, ts, dur, "host", ts))
        elif steps["gpu"]:
            ops.append((optype, ts, dur, "gpu", ts))
        else:
            ops.append((optype, ts, dur, "host", launches.get(corr, ts)))
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
        spans = sorted((r[1], r[1] + r[2]) for r in ranges if r[3] == pid)
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
    frame = pd.DataFrame(ops, columns=["optype", "ts", "dur", "clock", "at"])
    frame = frame.astype({"optype": str, "ts": float, "dur": float, "at": float})
    step = np.full(len(frame), -1, np.int64)
    for clock, windows in steps.items():
        mine = (frame["clock"] == clock).to_numpy()
        if not mine.any():
            continue
        numbers = np.array(sorted(windows, key=lambda n: windows[n][0]), np.int64)
        starts = np.array([windows[n][0] for n in numbers])
        which = np.searchsorted(starts, frame["at"].to_numpy()[mine], side="right") - 1
        step[mine] = np.where(which >= 0, numbers[which.clip(0)], -1)
    frame = frame.assign(step=step)[step >= 0].drop(columns=["clock", "at"])
    return frame.assign(dp_rank=dp_rank, stage=stage, rank=rank)


def _check_same_ops(table: pd.DataFrame, files: dict[int, Path]) -> None:
    """Every step of every representative of a stage holds the same ops (how many of each op type)."""
    counts = table.groupby(["stage", "rank", "step", "optype"]).size().unstack(fill_value=0)
    for _, block in counts.groupby(level="stage"):
        first = block.iloc[0]
        for rank, own in block.groupby(level="rank"):
            differ = (own != own.iloc[0]).any()
            if differ.any():
                op = differ.idxmax()
                high, low = own[op].idxmax()[2], own[op].idxmin()[2]
                raise InputError(
                    f"{files[rank]}: step {high} has {own[op].max()} {op} ops, step {low} has {own[op].min()}: {_LAGS}"
                )
            if (own.iloc[0] != first).any():
                op = (own.iloc[0] != first).idxmax()
                raise InputError(
                    f"{files[rank]}: step {own.index[0][2]} has {own.iloc[0][op]} {op} ops, {files[first.name[1]]}'s "
                    f"step {first.name[2]} has {first[op]}: {_LAGS}"
                )


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
