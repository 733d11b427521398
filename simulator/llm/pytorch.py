"""Plain PyTorch profiler traces (no Megatron-named ranges) -> the ops of each step, by observation.

What the profiler records on its own, with no annotation by the user:

- **Steps**: ``ProfilerStep#N`` ranges (or the user's ``--step-range NAME`` ranges) on the thread that
  trains (the *main* thread).
- **Compute**: the main thread's top-level ``cpu_op`` events (``aten::...``, the autograd engine's
  ``autograd::engine::evaluate_function: ...``) and the time between them, as long as the thread
  is not waiting for a collective. Backward begins at the first autograd engine event; the optimizer
  at ``Optimizer.step#...``.
- **Collectives**: a launch on the main thread (``c10d::allreduce_``, ``c10d::_reduce_scatter_base_``,
  ``c10d::send``, ...) and its execution: a ``gloo:...``/``nccl:...`` range on a communication
  thread, paired with the launches of its step in order. Gloo records no execution for send and recv:
  they block, and last until the main thread moves on.

A **wait** is an idle stretch of the main thread (at least :data:`MIN_WAIT`) that a collective ends (the
thread resumes within :data:`RESUME` of that end): the thread was blocked on it (a synchronous
``all_reduce``, DDP's wait for its buckets at the end of ``backward()``, a ``recv``). Waiting is not
compute. Wherever a wait is seen (in any step of any rank of a stage), every step of that stage is cut
there, so all hold the same ops.

The ops of one step of one rank, in order: compute *pieces* between the cuts (``forward-compute``,
``backward-compute`` or ``optimizer``; a cut at every collective's launch, at every wait, at the
start of backward and of the optimizer) and the collectives: all-reduce -> ``separate-grads-all-reduce``,
(launched before backward begins: ``dp-all-reduce``, not of gradients), reduce-scatter ->
``grads-reduce-scatter``, all-gather and broadcast -> ``params-all-gather``, send
-> ``forward-send`` after forward compute else ``backward-send``, recv -> ``forward-recv`` before
forward compute else ``backward-recv``. Which op waits for which is left to the replay's model
(``llm_model``, the ``observed`` schedule), which reads it from these times.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np
import pandas as pd

from ..io.errors import InputError

RESUME = 1000.0  # microseconds: a thread that resumes this soon after a collective ends was waiting for it
SLACK = 500.0  # microseconds: a waiting thread may resume before the collective's range is closed
MIN_WAIT = 200.0  # microseconds: a shorter idle stretch is the thread between two events, not a wait
_AUTOGRAD = "autograd::engine::evaluate_function"
_OPTIMIZER = re.compile(r"Optimizer\.step#")
_EXECUTION = re.compile(r"^(gloo|nccl):", re.IGNORECASE)
_KINDS = (  # a collective's kind from its name (lowercase, no separators), first match
    ("reducescatter", "reduce_scatter"),
    ("allreduce", "all_reduce"),
    ("allgather", "all_gather"),
    ("broadcast", "broadcast"),
    ("sendrecv", None),
    ("send", "send"),
    ("recv", "recv"),
)
P2P = ("send", "recv")
OPTYPE = {
    "all_reduce": "separate-grads-all-reduce",
    "reduce_scatter": "grads-reduce-scatter",
    "all_gather": "params-all-gather",
    "broadcast": "params-all-gather",
}


def kind_of(name: str) -> str | None:
    """The collective a ``c10d::``/``gloo:``/``nccl:`` name or an NCCL kernel's name stands for, or None."""
    flat = re.sub(r"[^a-z]", "", name.lower())
    return next((kind for key, kind in _KINDS if key in flat), None)


@dataclass
class Comm:
    """A collective of one step (microseconds): launched on the main thread, executed [start, end]."""

    kind: str
    launch: float
    start: float
    end: float


@dataclass
class Step:
    """One profiled step of one rank (microseconds)."""

    number: int
    start: float
    end: float
    ops: np.ndarray  # [n, 2] the main thread's top-level cpu_op events: start, end
    autograd: np.ndarray  # [n] bool: an autograd engine event
    launch: np.ndarray  # [n] bool: a collective's launch (c10d::...), not compute
    optimizer: float | None  # Optimizer.step's start
    comms: list[Comm] = field(default_factory=list)
    names: tuple[str, ...] = ()  # the top-level events' names

    @property
    def backward(self) -> int | None:
        """The first autograd engine event's place among the top-level events (None: no backward)."""
        return int(self.autograd.argmax()) if self.autograd.any() else None

    def holding(self, t: float) -> int:
        """The place of the top-level event that starts last at or before ``t`` (-1: none)."""
        return int(np.searchsorted(self.ops[:, 0], t, side="right")) - 1


def plain_kind(events: list) -> str | None:
    """Which plain PyTorch distributed trace ``events`` are: ``"cpu"`` (collective launches or executions,
    no GPU activity: read here), ``"gpu"`` (launches and GPU kernels: not read here), or None (neither)."""
    launch = execution = gpu = False
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("name"), str):
            continue
        gpu = gpu or ev.get("cat") in ("kernel", "gpu_user_annotation")
        launch = launch or ev["name"].startswith("c10d::")
        execution = execution or bool(_EXECUTION.match(ev["name"]))
    if gpu:
        return "gpu" if launch else None
    return "cpu" if launch or execution else None


def read_steps(path, events: list, windows: dict[int, tuple[float, float, object]]) -> dict[int, Step]:
    """The steps of one file: ``windows`` maps a step number to its (ts, dur, tid) on the main thread."""
    main = {tid for _, _, tid in windows.values()}
    if len(main) != 1:
        raise InputError(f"{path}: the step ranges lie on {len(main)} threads; profile one training thread")
    (main,) = main
    cpu, launches, executions, optimizer = [], [], [], []
    for ev in events:
        if not isinstance(ev, dict) or ev.get("ph") != "X" or not isinstance(ev.get("name"), str):
            continue
        name, cat, on_main = ev["name"], ev.get("cat"), ev.get("tid") == main
        try:
            ts, dur = float(ev["ts"]), float(ev["dur"])
        except (KeyError, TypeError, ValueError):
            continue  # the reader of step ranges and ops checks the events it uses
        if on_main and cat == "cpu_op":
            cpu.append((ts, -dur, name))
            if name.startswith("c10d::") and (kind := kind_of(name)):
                launches.append((ts, kind))
        elif on_main and cat == "user_annotation" and _OPTIMIZER.match(name):
            optimizer.append(ts)
        elif not on_main and _EXECUTION.match(name) and kind_of(name) not in P2P:
            executions.append((ts, ts + dur))
    top = _top_level(sorted(cpu))
    steps = {}
    for number, (ts, dur, _) in sorted(windows.items(), key=lambda kv: kv[1][0]):
        end = ts + dur
        inside = [(s, e, n) for s, e, n in top if ts <= s < end]
        ops = np.array([(s, min(e, end)) for s, e, _ in inside], np.float64).reshape(-1, 2)
        step = Step(
            number,
            ts,
            end,
            ops,
            np.array([n.startswith(_AUTOGRAD) for _, _, n in inside], bool),
            np.array([n.startswith("c10d::") for _, _, n in inside], bool),
            next((t for t in sorted(optimizer) if ts <= t < end), None),
            names=tuple(n for _, _, n in inside),
        )
        mine = sorted((t, k) for t, k in launches if ts <= t < end)
        runs = sorted((s, e) for s, e in executions if ts <= s < end)
        _pair(path, step, mine, runs)
        steps[number] = step
    return steps


def _top_level(cpu: list) -> list[tuple[float, float, str]]:
    """The events of one thread that no other of its events holds, in time order."""
    out, reach = [], -np.inf
    for ts, neg_dur, name in cpu:
        if ts >= reach:
            out.append((ts, ts - neg_dur, name))
            reach = ts - neg_dur
    return out


def _pair(path, step: Step, launches: list, runs: list) -> None:
    """Each launch with its execution: the collectives (not send/recv) in order. Send and recv, and
    collectives where no execution was recorded, block: they last until the thread's next event."""
    collective = [(t, k) for t, k in launches if k not in P2P]
    if runs and len(runs) != len(collective):
        raise InputError(
            f"{path}: step {step.number} launches {len(collective)} collective(s) but {len(runs)} ran on the "
            "communication threads; profile whole steps"
        )
    executions = iter(runs)
    starts = step.ops[:, 0]
    for t, kind in launches:
        if kind in P2P or not runs:
            i = step.holding(t)  # the top-level event holding the launch
            after = step.ops[i, 1] if i >= 0 else t
            later = starts[starts >= after]
            start, end = t, (later[0] if len(later) else step.end)
        else:
            start, end = next(executions)
        step.comms.append(Comm(kind, t, start, max(end, start)))


def leading_to_skip(found: dict, dp_size: int, pp_size: int, model_parallel: int) -> set[int]:
    """The warm-up steps to leave out (:func:`warm_up`) of the representatives ``found[rank] = (kind, steps)``
    of a DP x PP job; refused where it has tensor or context parallelism (``model_parallel`` > 1)."""
    if model_parallel > 1:
        raise InputError("plain PyTorch traces have no tensor or context parallelism: --tp and --cp must be 1")
    place = lambda d, s: d + dp_size * s  # noqa: E731
    return warm_up([[found[place(d, s)][1] for d in range(dp_size) if place(d, s) in found] for s in range(pp_size)])


def warm_up(stages: list[list[dict[int, Step]]]) -> set[int]:
    """The leading steps (at most half), up to the last in which some rank runs other events or collectives
    than its stage usually does, where every later step runs the usual ones: warm-up (lazy initialisation, DDP's bucket
    rebuild) in a trace profiled without a ``schedule=``. ``stages[s]``: each representative rank's steps.

    First, a step that runs the stage's usual events and some more (a ``print`` on rank 0 only, extra work
    on a slow rank) has each extra event folded into the event before it (:func:`_fold`)."""
    stages = [stage for stage in stages if stage]
    for stage in stages:
        counts = Counter(step.names for steps in stage for step in steps.values())
        usual = max(counts, key=lambda names: (counts[names], -len(names)))  # of equals, the fewest events
        for steps in stage:
            for step in steps.values():
                _fold(step, usual)
    numbers = sorted(set.intersection(*(set(steps) for stage in stages for steps in stage)))
    usual = [Counter(_shape(steps[n]) for steps in stage for n in numbers).most_common(1)[0][0] for stage in stages]
    alike = [all(_shape(steps[n]) == usual[i] for i, stage in enumerate(stages) for steps in stage) for n in numbers]
    half = len(numbers) // 2
    first = max((i + 1 for i in range(half) if not alike[i]), default=0)  # after the last odd one of the first half
    if not all(alike[first:]):
        return set()  # not a warm-up: the steps differ later on (the error names them)
    return set(numbers[:first])


def _fold(step: Step, usual: tuple[str, ...]) -> None:
    """Make ``step`` run the ``usual`` top-level events where it runs them and more: each extra event joins
    the event before it (the first event, where it comes first). Any other difference is left as it is."""
    if step.names == usual or len(step.names) <= len(usual):
        return
    codes = SequenceMatcher(None, usual, step.names, autojunk=False).get_opcodes()
    if any(tag not in ("equal", "insert") for tag, *_ in codes):
        return
    keep = np.zeros(len(step.names), bool)
    for tag, _, _, j1, j2 in codes:
        keep[j1:j2] = tag == "equal"
    owner = np.maximum(np.maximum.accumulate(np.where(keep, np.arange(len(keep)), -1)), int(keep.argmax()))
    ops = step.ops[keep].copy()
    where = np.cumsum(keep)[owner] - 1  # each event's place among the kept ones
    np.maximum.at(ops[:, 1], where, step.ops[:, 1])
    np.minimum.at(ops[:, 0], where, step.ops[:, 0])
    step.ops, step.names = ops, usual
    step.autograd, step.launch = step.autograd[keep], step.launch[keep]


def pieces(path, instances: list[tuple[object, Step]]) -> list[list[tuple[str, float, float]]]:
    """The ops of each (file, step) of one stage: [(optype, start, duration)], every instance cut alike.

    Raises:
        InputError: the instances do not run the same top-level events or collectives.
    """
    first_file, first = instances[0]
    shape = _shape(first)
    for file, step in instances[1:]:
        if _shape(step) != shape:
            raise InputError(
                f"{file}: step {step.number} runs {_said(step)}, but step {first.number} of {first_file} "
                f"runs {_said(first)}: the steps differ (every DP rank of a stage must run the same code each step: "
                "profile steady-state steps, schedule(wait=1, warmup=1, ...); check --dp and --pp, rank = dp_rank + "
                "dp x stage)"
            )
    n = len(first.ops)
    waits = set()
    for _, step in instances:
        gaps_end = np.append(step.ops[:, 0], step.end)
        gaps_start = np.insert(step.ops[:, 1], 0, step.start)
        for comm in step.comms:
            j = int(np.searchsorted(gaps_end, comm.end - SLACK, side="left"))  # the first event after the end
            idle = gaps_end[j] - gaps_start[j] >= MIN_WAIT if j <= n else False
            if idle and comm.launch <= gaps_start[j] <= comm.end and gaps_end[j] - comm.end <= RESUME:
                waits.add(j)
    return [_cut(step, waits) for _, step in instances]


def _shape(step: Step) -> tuple:
    return len(step.ops), step.backward, step.optimizer is None, tuple(c.kind for c in step.comms)


def _said(step: Step) -> str:
    return f"{len(step.ops)} top-level event(s) and {len(step.comms)} collective(s)"


def _cut(step: Step, waits: set[int]) -> list[tuple[str, float, float]]:
    """One instance's pieces and collectives. A cut's key is its place among the top-level events:
    ``(j, 0)`` the wait before event j, ``(j, 1)`` the start of event j, ``(i, 2, k)`` collective k's
    launch inside event i."""
    ops, n = step.ops, len(step.ops)
    starts = ops[:, 0]
    at = lambda j: ops[j, 0] if j < n else step.end  # noqa: E731
    cuts = {(j, 0): (ops[j - 1, 1] if j > 0 else step.start, at(j)) for j in waits}
    backward = n if step.backward is None else step.backward
    optimizer = int(np.searchsorted(starts, step.optimizer, side="left")) if step.optimizer is not None else n
    for j in {backward, optimizer} - {n} - waits:
        cuts[(j, 1)] = (at(j), at(j))
    for k, comm in enumerate(step.comms):
        cuts[(max(step.holding(comm.launch), 0), 2, k)] = (comm.launch, comm.launch)
    last_autograd = n - 1 - int(step.autograd[::-1].argmax()) if step.autograd.any() else -1
    keys = [(-1, 0), *sorted(cuts), (n + 1, 0)]
    bounds = [(step.start, step.start), *(cuts[key] for key in keys[1:-1]), (step.end, step.end)]
    out, kinds = [], []
    for (key, (_, begin)), (end_key, (end, _)) in zip(zip(keys, bounds), zip(keys[1:], bounds[1:])):  # noqa: B905
        first = max(key[0], 0)  # the events the piece holds: first .. last (a launch splits its event in two)
        last = min(end_key[0] - (1 if end_key[1] < 2 else 0), n - 1)
        if first >= optimizer:
            kind = "optimizer"
        elif step.autograd[first : last + 1].any() or first > last_autograd >= 0:
            kind = "backward-compute"
        elif not (~step.launch[first : last + 1]).any() and kinds:  # no compute of its own: the phase goes on
            kind = kinds[-1]
        else:
            kind = "forward-compute"
        kinds.append(kind)
        out.append((kind, begin, max(end, begin) - begin))
    for k, comm in enumerate(step.comms):
        place = keys.index(next(key for key in keys if len(key) == 3 and key[2] == k))
        # a send's data comes from the compute before it; a recv's goes to the compute after it ends
        consumer = next((kind for kind, t, _ in out if t >= comm.end), kinds[-1])
        optype = _comm_optype(comm.kind, kinds[place - 1], consumer, keys[place][0] < backward)
        out.append((optype, comm.start, comm.end - comm.start))
    return out


def _comm_optype(kind: str, before: str, after: str, forward: bool) -> str:
    """A collective's op type from its kind, the compute ``before`` its launch, the compute ``after`` it
    ends, and whether it was launched before backward began (``forward``)."""
    if kind == "all_reduce" and forward:  # before any gradient exists: not of gradients
        return "dp-all-reduce"
    if kind == "send":
        return "forward-send" if before == "forward-compute" else "backward-send"
    if kind == "recv":
        return "forward-recv" if after == "forward-compute" else "backward-recv"
    return OPTYPE[kind]


def stage_rows(
    found: dict, files: dict, stage_ranks: list, stage: int, pp_size: int, skip: set[int] = frozenset()
) -> pd.DataFrame:
    """The ops of one stage's representatives (``found[rank] = ("observed", steps)``), every step of every rank
    cut alike: rows of optype, ts, dur (microseconds), step, dp_rank, stage, rank."""
    common = sorted(set.intersection(*(set(found[r][1]) for _, r in stage_ranks)) - set(skip))
    owners = [(dp_rank, rank) for dp_rank, rank in stage_ranks for _ in common]
    instances = [(files[r], found[r][1][n]) for _, r in stage_ranks for n in common]
    cut = pieces(files[stage_ranks[0][1]], instances)
    if pp_size > 1 and not any(op.endswith(("-send", "-recv")) for op, _, _ in cut[0]):
        raise InputError(
            f"{files[stage_ranks[0][1]]}: stage {stage} neither sends nor receives, but a pipeline's stages exchange "
            "activations: check --dp and --pp (rank = dp_rank + dp x stage)"
        )
    rows = [
        (op, ts, dur, step.number, dp_rank, stage, rank)
        for (dp_rank, rank), (_, step), ops in zip(owners, instances, cut, strict=True)
        for op, ts, dur in ops
    ]
    return pd.DataFrame(rows, columns=["optype", "ts", "dur", "step", "dp_rank", "stage", "rank"])
