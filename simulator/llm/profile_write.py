"""Writing op tables, their meta YAML, and (for tests) the per-rank profiler traces a table would give.

:func:`import_ops` is the ``import-ops`` command: profiler traces -> the op table and ``meta-NAME.yaml``
beside it (``NAME``: the table's stem without a leading ``trace-``, the name ``whatif`` looks for).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

import pandas as pd
import yaml

from ..io.errors import InputError, named
from ..io.results import check_out_file
from ..io.shipped import shipped_if_missing
from ..io.storage import write_bytes, write_text
from .profile import COMPUTE, convert_profiles

_KERNEL_NAMES = {  # what write_profile names a bare kernel of each op type
    "params-all-gather": "ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
    "grads-reduce-scatter": "ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
    "separate-grads-all-reduce": "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
}
_GPU_AT, _HOST_AT = (0, 7), (1, 1)  # (pid, tid) where write_profile puts its GPU and host events


def import_ops(
    sources: list[Path],
    out: str | Path,
    *,
    dp_size: int,
    pp_size: int,
    tp_size: int = 1,
    cp_size: int = 1,
    step_range: str | None = None,
    trust_clocks: bool = False,
    overwrite: bool = False,
) -> str:
    """Convert profiler traces (:func:`convert_profiles`), write the table to ``out`` and the job's meta YAML
    beside it (:func:`meta_path`); nothing is written if either exists without ``overwrite``.

    Returns:
        The line to print: the files written and what they hold.
    """
    if str(out).endswith(("/", os.sep)) or Path(out).is_dir():
        raise InputError(f"{named('out')} {out}: is a directory; give a file name (ops.parquet or ops.csv)")
    out = Path(out)
    sources = [found for source in sources for found in _traces_in(shipped_if_missing(Path(source)))]
    meta = meta_path(out)
    check_out_file(out, overwrite=overwrite, inputs=sources)
    if meta.is_dir() or (meta.exists() and not overwrite):
        raise InputError(f"{named('out')} {out}: its meta file {meta} exists; pass {named('overwrite')} to replace it")
    sizes = {"dp_size": dp_size, "pp_size": pp_size, "tp_size": tp_size, "cp_size": cp_size}
    table = convert_profiles(sources, **sizes, step_range=step_range, trust_clocks=trust_clocks)
    write_table(table, out)
    write_meta(meta, **sizes, schedule=table.attrs.get("schedule", "megatron"))
    left = table.attrs.get("left_out")
    return (
        f"{out}: {_count(len(table), 'op')}, {_count(table['step'].nunique(), 'step')}, "
        f"{_count(dp_size, 'DP rank')} x {_count(pp_size, 'stage')} from {_count(len(sources), 'file')}; "
        f"meta {meta}" + (f"; left out warm-up step(s) {left} (they run other events than the rest)" if left else "")
    )


def _traces_in(source: Path) -> list[Path]:
    """A trace file, or a folder's ``*.json`` and ``*.json.gz`` files (in name order)."""
    if not source.is_dir():
        return [source]
    found = sorted(p for p in source.iterdir() if p.name.endswith((".json", ".json.gz")) and p.is_file())
    if not found:
        raise InputError(f"{source}: a folder with no trace (*.json, *.json.gz) in it")
    return found


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def meta_path(table: Path) -> Path:
    """``meta-NAME.yaml`` beside ``table``, NAME its stem without a leading ``trace-``."""
    table = Path(table)
    return table.with_name(f"meta-{table.stem.removeprefix('trace-')}.yaml")


def write_meta(
    path: Path, *, dp_size: int, pp_size: int, tp_size: int = 1, cp_size: int = 1, schedule: str = "megatron"
) -> None:
    """The job's meta YAML (as the artifact's ``meta-ST.yaml``), its trial name from ``path``'s name;
    ``schedule: observed`` for a table read by observation from plain PyTorch traces."""
    sizes = {"dp_size": dp_size, "pp_size": pp_size, "tp_size": tp_size, "dsp_size": cp_size, "vpp_size": 1}
    meta = {"trial_name": Path(path).stem.removeprefix("meta-"), **sizes}
    meta["world_size"] = dp_size * pp_size * tp_size * cp_size
    if schedule != "megatron":
        meta["schedule"] = schedule
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(meta, sort_keys=False))


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Write an op table atomically: parquet for a ``.parquet`` name, else CSV."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        write_bytes(out, table.to_parquet(index=False))
    else:
        write_text(out, table.to_csv(index=False))


def write_profile(
    table: pd.DataFrame,
    path_dir: Path,
    *,
    dp_size: int,
    pp_size: int,
    tp_size: int = 1,
    cp_size: int = 1,
    kernels: Collection[str] = (),
    lag: float = 0.0,
    correlation: bool = False,
    gpu_steps: bool = False,
) -> list[Path]:
    """Write an op table as the Chrome traces the profiler would: one ``rank{R}.json`` per representative.

    Each step gets a host ``ProfilerStep#N`` window from its first op's start to its last op's end; each
    op a GPU range (``gc`` a host range), with an NCCL kernel inside send/recv ranges and a GEMM inside
    compute ranges; the op types in ``kernels`` (keys of :data:`_KERNEL_NAMES`) are bare NCCL kernels
    instead, for the classifier.

    Args:
        table: columns :data:`COLUMNS` (at least dp_rank, stage, step, optype, start_ts, duration),
            times in seconds on one clock (a rank's steps must not interleave).
        lag: seconds the GPU runs behind the host: host events (step windows, ``gc``, launches) are
            written that much earlier than the table's times, GPU events at them.
        correlation: give each GPU event an ``args.correlation`` id and a host ``cudaLaunchKernel`` event
            (at the op's start less ``lag``) with the same id.
        gpu_steps: also write each step as a GPU-side ``ProfilerStep#N`` range (``gpu_user_annotation``)
            from its first op's start to its last op's end.

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
            events.append(_event(f"ProfilerStep#{step}", "user_annotation", start - lag, end - start, host=True))
            if gpu_steps:
                events.append(_event(f"ProfilerStep#{step}", "gpu_user_annotation", start, end - start))
        for optype, start, duration in zip(ops["optype"], ops["start_ts"], ops["duration"], strict=True):
            own = _op_events(str(optype), float(start), float(duration), kernels, lag)
            for event in own if correlation else ():
                if event["pid"] == _GPU_AT[0]:
                    event["args"] = {"correlation": len(events)}
                    launch = _event("cudaLaunchKernel", "cuda_runtime", start - lag, 4e-6, host=True)
                    events.append({**launch, "args": {"correlation": len(events)}})
            events += own
        doc = {
            "schemaVersion": 1,
            "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": world},
            "traceEvents": events,
        }
        path = path_dir / f"rank{rank}.json"
        write_text(path, json.dumps(doc))
        written.append(path)
    return written


def _op_events(optype: str, start: float, duration: float, kernels: Collection[str], lag: float) -> list[dict]:
    """The trace events of one op (times in seconds; host events ``lag`` earlier)."""
    if optype in kernels:
        return [_event(_KERNEL_NAMES[optype], "kernel", start, duration)]
    if optype == "gc":
        return [_event("gc", "user_annotation", start - lag, duration, host=True)]
    events = [_event(optype, "gpu_user_annotation", start, duration)]
    if optype.endswith(("-send", "-recv")):
        events.append(_event("ncclDevKernel_SendRecv(ncclDevComm*, ncclWork*)", "kernel", start, duration))
    elif optype in COMPUTE:
        events.append(_event("sm90_xmma_gemm_bf16bf16_bf16f32", "kernel", start, duration))
    return events


def _event(name: str, cat: str, start: float, duration: float, host: bool = False) -> dict:
    pid, tid = _HOST_AT if host else _GPU_AT
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": start * 1e6, "dur": duration * 1e6}
