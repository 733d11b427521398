"""The dependency model of a hybrid-parallel step: which op waits for which.

Within a worker (one DP rank, one stage) there are streams, each running in recorded order:
  - compute: forward and backward micro-batches, then gc, the layernorm all-reduce, the embedding
    all-reduce (first and last stage), the gradient collectives, grad-norm clipping, the optimizer;
  - one stream per pipeline op type (forward/backward send/recv);
  - the data-parallel stream: params all-gather, then gradient reduce-scatters.
Across the stream boundaries: a forward (backward) compute waits for its micro-batch's recv, a
recv is posted once the compute op before its consumer ends, a send waits for the compute that
produced it; the first forward of a step waits for the params all-gather.

Communication ops end together. A group's members end at the latest start among them (and, for
data-parallel collectives, over the DP ranks too) plus each member's transfer time:
  - a pipeline send pairs with the recv of the same micro-batch on the adjacent stage;
  - params all-gather, gradient reduce-scatter and separate all-reduce synchronise one stage
    across the DP ranks;
  - the embedding all-reduce synchronises the first and last stage of one DP rank;
  - the grad-norm all-reduce (optimizer-clip-main-grad) synchronises every stage and DP rank.

References:
    Lin et al., "Understanding Stragglers in Large Model Training Using What-if Analysis",
    OSDI 2025, section 3.2 (the dependency model), Figure 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io.errors import InputError
from .trace import COMPUTE, DP_COLLECTIVES, OpTrace

GRADIENT_COLLECTIVES = ("grads-reduce-scatter", "separate-grads-all-reduce")
SLACK = 5e-4  # seconds: a thread waiting for a collective may resume before the collective's range is closed


@dataclass(frozen=True)
class Group:
    """Ops that are replayed together: one compute op, or a communication group."""

    members: tuple[int, ...]  # slots
    comm: bool  # end = latest start of the group + transfer time
    dp_sync: bool  # the latest start is also taken over the DP ranks
    gradient: bool  # a data-parallel gradient collective (where backup replicas cut in)


@dataclass(frozen=True)
class Model:
    """Dependencies of each slot (``deps[slot]``: slots it waits for, same step and DP rank) and
    the groups in an order where every group comes after the groups it waits for."""

    deps: tuple[np.ndarray, ...]
    groups: tuple[Group, ...]  # topologically ordered
    is_comm: np.ndarray  # [slot] bool
    # observed schedules: slot -> the gradient collectives it waits for; a dropped replica resumes there
    resume: dict[int, np.ndarray] = field(default_factory=dict)


def build(trace: OpTrace) -> Model:
    """The dependency model of ``trace`` (the slots of its first step on DP rank 0 set the order):
    Megatron's schedule, or for a trace read by observation (``meta.schedule == "observed"``) the
    one its times show (:func:`observed`)."""
    if trace.meta.schedule == "observed":
        return observed(trace)
    slots, pp = trace.slots, trace.meta.pp_size
    graph = _Graph(trace)
    deps, of, group = graph.deps, graph.of, graph.group
    for stage in range(pp):
        on_stage = slots[slots.stage == stage]
        chain = on_stage.index[on_stage.optype.isin(COMPUTE)].to_numpy()  # recorded order
        if len(chain) == 0:
            raise InputError(f"{trace.path}: stage {stage} has no forward or backward compute")
        _chain(deps, chain)
        position = {int(s): i for i, s in enumerate(chain)}
        for kind in ("forward", "backward"):
            computes = of(f"{kind}-compute", stage)
            for direction in ("send", "recv"):
                comms = of(f"{kind}-{direction}", stage)
                if len(comms) not in (0, len(computes)):
                    raise InputError(
                        f"{trace.path}: stage {stage} has {len(comms)} {kind}-{direction} ops for "
                        f"{len(computes)} {kind}-compute ops (one each, or none)"
                    )
                _chain(deps, comms)
                for comm, compute in zip(comms, computes, strict=False):
                    if direction == "send":  # the compute produces what is sent
                        deps[comm].append(compute)
                    else:  # posted after the compute before its consumer; the consumer waits for it
                        deps[compute].append(comm)
                        if position[compute] > 0:
                            deps[comm].append(chain[position[compute] - 1])
        gathers = of("params-all-gather", stage)
        if len(gathers):
            first_forward = of("forward-compute", stage)
            if len(first_forward):
                deps[first_forward[0]].extend(gathers)
        data_parallel = on_stage.index[on_stage.optype.isin(("params-all-gather", "grads-reduce-scatter"))]
        _chain(deps, data_parallel.to_numpy())  # the DP stream, recorded order
        _tail(deps, of, stage, chain[-1])
    graph.pair_and_group()
    embedding = [s for stage in sorted({0, pp - 1}) for s in of("embedding-grads-all-reduce", stage)]
    if embedding:
        group(embedding)
    clip = [s for stage in range(pp) for s in of("optimizer-clip-main-grad", stage)]
    if clip:
        group(clip, dp_sync=True)
    return graph.model()


def observed(trace: OpTrace) -> Model:
    """The dependencies a plain PyTorch trace shows, the same for every step and DP rank:

    - each stage's compute pieces run one after another (one training thread);
    - a collective waits for the compute piece that ends where it is launched (the latest piece that
      ends before it starts, in every step on every DP rank);
    - a compute piece waits for a collective that, in most steps on most DP ranks, ends in the idle
      stretch just before it (the thread waited for it); the step's last piece waits for the others;
    - groups as in Megatron's model: a send with the recv of the same number on the adjacent stage;
      each data-parallel collective over the stage's DP ranks (gradient ones: where backups cut in).
    """
    slots, start, end = trace.slots, trace.start, trace.end
    graph = _Graph(trace)
    deps = graph.deps
    for stage in range(trace.meta.pp_size):
        on_stage = slots[slots.stage == stage]
        pieces = on_stage.index[on_stage.optype.isin((*COMPUTE, "optimizer"))].to_numpy()
        if len(pieces) == 0:
            raise InputError(f"{trace.path}: stage {stage} has no compute")
        order = np.lexsort((end[pieces].mean(axis=(1, 2)), start[pieces].mean(axis=(1, 2))))
        chain = pieces[order]
        _chain(deps, chain)
        comms = on_stage.index[~on_stage.optype.isin((*COMPUTE, "optimizer"))].to_numpy()
        for comm in comms:
            before = [p for p in chain if (end[p] <= start[comm] + SLACK).all() and (start[p] < start[comm]).all()]
            if before:
                deps[comm].append(before[-1])
        waited = set()
        for previous, piece in zip(chain[:-1], chain[1:], strict=True):
            for comm in comms:
                inside = (end[comm] >= end[previous] - SLACK) & (end[comm] <= start[piece] + SLACK)
                inside &= start[comm] <= end[previous]  # launched before the thread went idle
                if inside.mean() > 0.5:  # it ends in the wait before the piece, in most steps
                    deps[piece].append(comm)
                    waited.add(comm)
        deps[chain[-1]].extend(c for c in comms if c not in waited)  # the step ends after its collectives
    graph.pair_and_group()
    return graph.model(resume=True)


class _Graph:
    """A model being built: each slot's dependencies, and the groups replayed together."""

    def __init__(self, trace: OpTrace):
        self.trace, n = trace, len(trace.slots)
        self.deps: list[list[int]] = [[] for _ in range(n)]
        self.groups: list[Group] = []
        self.in_group = np.zeros(n, bool)

    def group(self, members, *, dp_sync=False, gradient=False) -> None:
        self.groups.append(Group(tuple(int(m) for m in members), True, dp_sync, gradient))
        self.in_group[list(members)] = True

    def of(self, optype: str, stage: int) -> np.ndarray:
        """The slots of one op type on one stage, by seq_id."""
        slots = self.trace.slots
        found = slots[(slots.optype == optype) & (slots.stage == stage)]
        return found.sort_values("seq_id").index.to_numpy()

    def pair_and_group(self) -> None:
        """Each send with its recv; each data-parallel collective over its stage's DP ranks."""
        _pair_p2p(self.trace, self.of, self.group)
        for optype in DP_COLLECTIVES:
            for stage in range(self.trace.meta.pp_size):
                for slot in self.of(optype, stage):
                    self.group([slot], dp_sync=True, gradient=optype in GRADIENT_COLLECTIVES)

    def model(self, *, resume: bool = False) -> Model:
        """The model: every slot in no group its own group; ``resume``: where a dropped replica goes on
        (the slots that wait for a gradient collective)."""
        groups = self.groups + [Group((i,), False, False, False) for i in range(len(self.deps)) if not self.in_group[i]]
        deps = tuple(np.unique(np.asarray(d, dtype=np.int64)) for d in self.deps)
        waits = {}
        if resume:
            gradient = self.trace.slots["optype"].isin(GRADIENT_COLLECTIVES).to_numpy()
            waits = {m: d[gradient[d]] for m, d in enumerate(deps) if not gradient[m] and gradient[d].any()}
        return Model(deps, tuple(_order(self.trace, deps, groups)), self.in_group, waits)


def _tail(deps, of, stage: int, last_compute: int) -> None:
    """After the last compute: gc, layernorm and embedding all-reduces, the gradient collectives,
    clipping, the optimizer, one after another. Where a separate all-reduce exists, the
    reduce-scatters overlap the backward pass instead: they wait for the last compute, and the
    separate all-reduce for them."""
    scatters = list(of("grads-reduce-scatter", stage))
    separate = list(of("separate-grads-all-reduce", stage))
    if separate and scatters:
        deps[scatters[0]].append(last_compute)
        deps[separate[0]].append(scatters[-1])
    sequence = [*of("gc", stage), *of("layernorm-grads-all-reduce", stage), *of("embedding-grads-all-reduce", stage)]
    sequence += separate or scatters
    sequence += [*of("optimizer-clip-main-grad", stage), *of("optimizer", stage)]
    _chain(deps, [last_compute, *sequence])


def _pair_p2p(trace: OpTrace, of, group) -> None:
    """Send k of a stage pairs with recv k of the adjacent stage (forward: next, backward: previous)."""
    pp = trace.meta.pp_size
    for kind, step in (("forward", 1), ("backward", -1)):
        for stage in range(pp):
            peer = stage + step
            sends = of(f"{kind}-send", stage)
            recvs = of(f"{kind}-recv", peer) if 0 <= peer < pp else np.array([], int)
            if len(sends) != len(recvs):
                raise InputError(
                    f"{trace.path}: stage {stage} has {len(sends)} {kind}-send ops but stage {peer} "
                    f"has {len(recvs)} {kind}-recv ops to pair them with"
                )
            for send, recv in zip(sends, recvs, strict=True):
                group([send, recv])
        for stage in range(pp):
            if 0 <= stage - step < pp:
                continue
            if len(of(f"{kind}-recv", stage)):
                raise InputError(f"{trace.path}: stage {stage} has {kind}-recv ops but no stage sends to it")


def _chain(deps, slots) -> None:
    for before, after in zip(slots[:-1], slots[1:], strict=True):
        deps[after].append(before)


def _order(trace: OpTrace, deps, groups: list[Group]) -> list[Group]:
    """Kahn's algorithm over groups; a cycle means the trace breaks the schedule the model assumes."""
    group_of = np.empty(len(deps), np.int64)
    for g, grp in enumerate(groups):
        group_of[list(grp.members)] = g
    waits = [set() for _ in groups]
    for g, grp in enumerate(groups):
        for m in grp.members:
            waits[g].update(int(x) for x in group_of[deps[m]] if x != g)
    blocking = [[] for _ in groups]
    for g, w in enumerate(waits):
        for h in w:
            blocking[h].append(g)
    remaining = [len(w) for w in waits]
    ready = [g for g, r in enumerate(remaining) if r == 0]
    order = []
    while ready:
        g = ready.pop()
        order.append(groups[g])
        for h in blocking[g]:
            remaining[h] -= 1
            if remaining[h] == 0:
                ready.append(h)
    if len(order) < len(groups):
        stuck = trace.slots.iloc[next(m for g, r in enumerate(remaining) if r for m in groups[g].members)]
        raise InputError(
            f"{trace.path}: the ops cannot be ordered (a dependency cycle through {stuck.optype} "
            f"seq_id {stuck.seq_id} on stage {stuck.stage}): not a schedule this model knows"
        )
    return order
