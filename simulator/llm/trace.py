"""Op-level traces of hybrid-parallel (DP x PP x TP) training jobs: reading and validation.

One row per op recorded on one representative rank of each (DP rank, pipeline stage), the schema
of Lin et al.'s what-if artifact (ByteDance-Seed/StragglerAnalysis): ``dp_rank, stage, rank, step,
optype, start_ts, duration, seq_id, mc, gmc, mb_id`` (times in seconds). The job's sizes come from a
small YAML file (``dp_size, pp_size, tp_size, dsp_size, vpp_size, world_size``).

Every (step, DP rank) must hold the same ops, stage by stage: an op is the slot ``(stage, optype,
seq_id)``, and a trace becomes arrays ``[slot, step, dp_rank]`` of start times (from the step's
first op) and durations, which is what the replay works on.

References:
    Lin et al., "Understanding Stragglers in Large Model Training Using What-if Analysis",
    OSDI 2025, section 3 (the trace and the dependency model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from ..io import memory
from ..io.errors import InputError, named

COLUMNS = ("dp_rank", "stage", "rank", "step", "optype", "start_ts", "duration", "seq_id", "mc", "gmc", "mb_id")
INTEGER_COLUMNS = ("dp_rank", "stage", "rank", "step", "seq_id", "mc", "gmc", "mb_id")
COMPUTE = ("forward-compute", "backward-compute")
P2P = ("forward-send", "forward-recv", "backward-send", "backward-recv")
DP_COLLECTIVES = ("params-all-gather", "grads-reduce-scatter", "separate-grads-all-reduce", "dp-all-reduce")
# dp-all-reduce: an all-reduce over the DP ranks that is not of gradients (a plain PyTorch job's loss all-reduce)
OPTYPES = (
    *COMPUTE,
    *P2P,
    *DP_COLLECTIVES,
    "embedding-grads-all-reduce",
    "layernorm-grads-all-reduce",
    "optimizer-clip-main-grad",
    "optimizer",
    "gc",
)
# Communication in the paper's sense: the ideal replay gives these the median of their type, the rest the mean.
COMMUNICATION = (
    *P2P,
    *DP_COLLECTIVES,
    "embedding-grads-all-reduce",
    "layernorm-grads-all-reduce",
    "optimizer-clip-main-grad",
)
BYTES_PER_OP = 1000  # memory of the analysis per op (measured: about 700 on the AR trace)
CSV_BYTES_PER_ROW = 40  # the shortest plausible row of an op table, for an estimate before reading
META_KEYS = ("dp_size", "pp_size", "tp_size", "dsp_size", "vpp_size", "world_size")
SCHEDULES = ("megatron", "observed")  # the meta's optional schedule: observed for plain PyTorch traces


@dataclass(frozen=True)
class JobMeta:
    """A job's parallel layout (the meta YAML)."""

    name: str
    dp_size: int
    pp_size: int
    tp_size: int = 1
    dsp_size: int = 1  # context (sequence) parallel size
    vpp_size: int = 1  # virtual pipeline chunks per stage
    schedule: str = "megatron"  # which op waits for which: Megatron's schedule, or observed in the times

    @property
    def world_size(self) -> int:
        return self.dp_size * self.pp_size * self.tp_size * self.dsp_size

    def as_dict(self) -> dict:
        own = {"trial_name": self.name, **{k: getattr(self, k) for k in META_KEYS}}
        return own if self.schedule == "megatron" else {**own, "schedule": self.schedule}


@dataclass(frozen=True)
class OpTrace:
    """A validated op-level trace as arrays ``[slot, step, dp_rank]``.

    ``slots`` has one row per op of a step on one DP rank: ``stage, optype, seq_id, mc, gmc,
    mb_id``. ``start`` is seconds from the step's first op (over all ranks), ``duration`` seconds.
    """

    meta: JobMeta
    path: Path
    steps: np.ndarray  # recorded step numbers, increasing
    ranks: np.ndarray  # [dp_rank, stage] -> the recorded global rank
    slots: pd.DataFrame
    start: np.ndarray  # [slot, step, dp] seconds
    duration: np.ndarray  # [slot, step, dp] seconds

    @property
    def end(self) -> np.ndarray:
        return self.start + self.duration

    @property
    def n_ops(self) -> int:
        return self.start.size

    def step_times(self) -> np.ndarray:
        """Measured step times: the last op's end minus the first op's start (over all ranks), per step."""
        return self.end.max(axis=(0, 2))

    def rank_step_times(self) -> np.ndarray:
        """Measured step times as each rank sees them (its own last op's end minus its own first op's
        start: its ``ProfilerStep`` window, in a trace read by observation), the mean over the ranks."""
        stage = self.slots["stage"].to_numpy()
        spans = [self.end[stage == s].max(axis=0) - self.start[stage == s].min(axis=0) for s in np.unique(stage)]
        return np.mean(spans, axis=(0, 2))

    def slots_of(self, optype: str, stage: int) -> np.ndarray:
        s = self.slots
        return s.index[(s.optype == optype) & (s.stage == stage)].to_numpy()


def read_meta(path: Path) -> JobMeta:
    """The job's sizes from its meta YAML; a missing or bad field is an InputError naming it."""
    if not Path(path).exists():
        raise InputError(f"{named('meta')} {path}: no such file")
    try:
        data = yaml.safe_load(Path(path).read_text())
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text (UTF-8) file; the meta is YAML") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of dp_size, pp_size, ... (got {type(data).__name__})")
    sizes = {}
    for key in META_KEYS:
        value = data.get(key, 1 if key in ("tp_size", "dsp_size", "vpp_size") else None)
        if value is None and key == "world_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{path}: {key} must be a positive integer (got {value!r})")
        sizes[key] = value
    schedule = data.get("schedule", "megatron")
    if schedule not in SCHEDULES:
        raise InputError(f"{path}: schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")
    meta = JobMeta(
        str(data.get("trial_name", Path(path).stem)),
        **{k: v for k, v in sizes.items() if k != "world_size"},
        schedule=schedule,
    )
    given = sizes.get("world_size", meta.world_size)
    if given != meta.world_size:
        raise InputError(
            f"{path}: world_size {given} is not dp_size x pp_size x tp_size x dsp_size ({meta.world_size})"
        )
    if meta.vpp_size != 1:
        raise InputError(f"{path}: vpp_size {meta.vpp_size}: interleaved (virtual) pipelines are not supported yet")
    return meta


def read_ops(path: Path) -> pd.DataFrame:
    """The op table of a parquet or CSV file, columns checked and typed; rows keep their file order."""
    path = Path(path)
    _check_memory(path)
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, MemoryError):
        raise
    except Exception as err:  # pyarrow and pandas raise many types for a corrupt file
        raise InputError(
            f"{path}: not a readable {path.suffix.lstrip('.') or 'CSV'} table ({_first_line(err)})"
        ) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (an op table needs {', '.join(COLUMNS)})")
    frame = frame[list(COLUMNS)].reset_index(drop=True)
    frame["optype"] = frame["optype"].astype(str)
    for col in INTEGER_COLUMNS:
        frame[col] = _integers(path, frame, col)
    for col in ("start_ts", "duration"):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | ((values < 0) if col == "duration" else False)
        if bad.any():
            raise InputError(
                f"{_where(path, bad.argmax())}: {col} {_shown(frame[col].iloc[bad.argmax()])} is not a finite"
                f"{' non-negative' if col == 'duration' else ''} number of seconds"
            )
        frame[col] = values
    unknown = ~frame["optype"].isin(OPTYPES)
    if unknown.any():
        i = unknown.to_numpy().argmax()
        raise InputError(f"{_where(path, i)}: unknown optype {frame['optype'].iloc[i]!r} (known: {', '.join(OPTYPES)})")
    return frame


def load(path: Path, meta: JobMeta) -> OpTrace:
    """Read ``path`` and check it against ``meta`` and the schedule: every (step, DP rank) holds the
    same ops on each stage, once each."""
    path = Path(path)
    frame = read_ops(path)
    if frame.empty:
        raise InputError(f"{path}: no ops")
    for col, size in (("dp_rank", meta.dp_size), ("stage", meta.pp_size)):
        outside = (frame[col] < 0) | (frame[col] >= size)
        if outside.any():
            i = outside.to_numpy().argmax()
            raise InputError(
                f"{_where(path, i)}: {col} {frame[col].iloc[i]} is outside 0..{size - 1} (the meta's "
                f"{'dp_size' if col == 'dp_rank' else 'pp_size'} is {size})"
            )
    ranks = _ranks(path, frame, meta)
    steps = np.unique(frame["step"].to_numpy())
    # The reference schedule: the first (step, DP rank) with the most ops (a row missing elsewhere is named there).
    sizes = frame.groupby(["step", "dp_rank"], sort=True).size()
    ref_step, ref_dp = sizes.idxmax()
    first = frame[(frame.step == ref_step) & (frame.dp_rank == ref_dp)]
    slots = first.sort_values(["stage", "start_ts", "seq_id", "optype"], kind="stable")
    slots = slots[["stage", "optype", "seq_id", "mc", "gmc", "mb_id"]].reset_index(drop=True)
    if slots.duplicated(["stage", "optype", "seq_id"]).any():
        dup = slots[slots.duplicated(["stage", "optype", "seq_id"])].iloc[0]
        raise InputError(
            f"{path}: step {ref_step} DP rank {ref_dp} stage {dup.stage} has {dup.optype} seq_id {dup.seq_id} twice"
        )
    key = pd.MultiIndex.from_frame(slots[["stage", "optype", "seq_id"]])
    slot = key.get_indexer(pd.MultiIndex.from_frame(frame[["stage", "optype", "seq_id"]]))
    if (slot < 0).any():
        i = int((slot < 0).argmax())
        row = frame.iloc[i]
        raise InputError(
            f"{_where(path, i)}: {row.optype} seq_id {row.seq_id} on stage {row.stage} (step {row.step}, "
            f"DP rank {row.dp_rank}) is not in the schedule of step {ref_step}, DP rank {ref_dp}"
        )
    step = np.searchsorted(steps, frame["step"].to_numpy())
    dp = frame["dp_rank"].to_numpy()
    cell = (slot * len(steps) + step) * meta.dp_size + dp
    counts = np.bincount(cell, minlength=len(slots) * len(steps) * meta.dp_size)
    if (counts > 1).any():
        c = int((counts > 1).argmax())
        i = int(np.flatnonzero(cell == c)[1])
        raise InputError(
            f"{_where(path, i)}: a second {frame.optype.iloc[i]} seq_id {frame.seq_id.iloc[i]} in step "
            f"{frame.step.iloc[i]} on DP rank {dp[i]}, stage {frame.stage.iloc[i]}"
        )
    if (counts == 0).any():
        c = int((counts == 0).argmax())
        s, rest = divmod(c, len(steps) * meta.dp_size)
        k, d = divmod(rest, meta.dp_size)
        row = slots.iloc[s]
        raise InputError(
            f"{path}: step {steps[k]} on DP rank {d}, stage {row.stage} has no {row.optype} seq_id "
            f"{row.seq_id} (every step and DP rank must run the same ops)"
        )
    start = np.empty(len(counts))
    duration = np.empty(len(counts))
    start[cell] = frame["start_ts"].to_numpy()
    duration[cell] = frame["duration"].to_numpy()
    shape = (len(slots), len(steps), meta.dp_size)
    start, duration = start.reshape(shape), duration.reshape(shape)
    start = start - start.min(axis=(0, 2), keepdims=True)
    return OpTrace(meta, path, steps, ranks, slots, start, duration)


def _check_memory(path: Path) -> None:
    """Refuse, unread, a table whose analysis needs more memory than the machine has."""
    if path.suffix == ".parquet":
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, MemoryError):
            raise
        except Exception:  # not parquet: the reader says so
            return
    else:
        rows = path.stat().st_size // CSV_BYTES_PER_ROW
    need, available = rows * BYTES_PER_OP, memory.machine_memory()  # io.memory's at each call: tests replace it
    if need > available:
        raise InputError(
            f"{path}: analysing {rows:,} ops needs about {memory._gb(need)} of memory (this machine has "
            f"{memory._gb(available)}); give fewer steps"
        )
    return


def _ranks(path: Path, frame: pd.DataFrame, meta: JobMeta) -> np.ndarray:
    pairs = frame[["dp_rank", "stage", "rank"]].drop_duplicates()
    ranks = np.full((meta.dp_size, meta.pp_size), -1)
    for d, s, r in pairs.itertuples(index=False):
        if ranks[d, s] not in (-1, r):
            raise InputError(f"{path}: DP rank {d}, stage {s} was recorded on two ranks ({ranks[d, s]} and {r})")
        ranks[d, s] = r
    if (ranks < 0).any():
        d, s = np.argwhere(ranks < 0)[0]
        raise InputError(
            f"{path}: no ops of DP rank {d}, stage {s} (the meta says dp_size {meta.dp_size}, pp_size {meta.pp_size})"
        )
    return ranks


def _integers(path: Path, frame: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(bad.argmax())
        raise InputError(f"{_where(path, i)}: {col} {_shown(frame[col].iloc[i])} is not an integer")
    return values.astype(np.int64)


def _shown(value) -> str:
    """A cell as the user wrote it: 0.5, nan, 'x' (not np.float64(0.5))."""
    return repr(value.item() if hasattr(value, "item") else value)


def _where(path: Path, i: int) -> str:
    """A row as a user finds it: the CSV's line (header = line 1) or the parquet's row."""
    return f"{path}: line {i + 2}" if Path(path).suffix != ".parquet" else f"{path}: row {i}"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
