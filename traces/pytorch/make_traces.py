"""Make real PyTorch profiler traces of small data- and pipeline-parallel jobs on the CPU (gloo).

Each job runs 4 processes (``torch.multiprocessing``, the gloo backend, one thread each), profiles
every rank with ``torch.profiler`` (a ``schedule=``, so the trace holds ``ProfilerStep#N``
markers) and writes ``JOB/rank{R}.json.gz``: the profiler's own Chrome trace, gzipped, nothing
relabelled. With ``--slow-rank R`` that rank sleeps ``--delay`` seconds in the forward pass of every step.

Jobs (``--job``):
    ddp        DistributedDataParallel (bucketed all-reduces overlap the backward pass)
    allreduce  plain data parallel: one blocking ``all_reduce`` of the flattened gradients after ``backward()``
    fsdp       FullyShardedDataParallel (FSDP2 ``fully_shard``), where gloo runs it
    dp2pp2     DP 2 x PP 2: two pipeline stages (one micro-batch a step, blocking send/recv) and a
               blocking all-reduce of each stage's flattened gradients over its DP group; rank =
               dp_rank + 2 * stage (Megatron's order)

Needs ``pip install 'stragglersim[torch]'`` (torch is never a dependency of the package).
Usage: ``python traces/pytorch/make_traces.py --job ddp --slow-rank 1 --out traces/pytorch/ddp-slow1``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.profiler import ProfilerActivity, profile, schedule

WORLD = 4
WIDTH = 256  # the MLP's width: about 10 ms of compute per step and rank on one core, 1 MB of gradients
BATCH = 256
JOBS = ("ddp", "allreduce", "fsdp", "dp2pp2")


class Slow(nn.Module):
    """Sleeps ``delay`` seconds in every forward pass (0: nothing): the straggler."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return x


def mlp(layers: int, delay: float, out: int = WIDTH) -> nn.Sequential:
    body = [m for _ in range(layers) for m in (nn.Linear(WIDTH, WIDTH), nn.ReLU())]
    return nn.Sequential(Slow(delay), *body, nn.Linear(WIDTH, out))


def data(rank: int):
    gen = torch.Generator().manual_seed(rank)
    return torch.randn(BATCH, WIDTH, generator=gen), torch.randint(0, 10, (BATCH,), generator=gen)


def run(rank: int, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.manual_seed(0)
    delay = args.delay if rank == args.slow_rank else 0.0
    step = {"ddp": ddp, "allreduce": allreduce, "fsdp": fsdp, "dp2pp2": dp2pp2}[args.job](rank, delay)
    plan = schedule(wait=1, warmup=1, active=args.steps)
    with profile(activities=[ProfilerActivity.CPU], schedule=plan) as prof:
        for _ in range(2 + args.steps):
            step()
            prof.step()
    dist.barrier()
    raw = Path(args.tmp) / f"rank{rank}.json"
    prof.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.GzipFile(Path(args.out) / f"rank{rank}.json.gz", "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    dist.destroy_process_group()


def ddp(rank: int, delay: float):
    model = nn.parallel.DistributedDataParallel(mlp(4, delay, 10), bucket_cap_mb=2)
    return _trainer(model, rank, lambda: None)


def allreduce(rank: int, delay: float):
    model = mlp(4, delay, 10)
    dist.broadcast_object_list([0])  # every rank ready

    def reduce():  # one flat all-reduce of every gradient
        grads = [p.grad for p in model.parameters()]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for g, new in zip(grads, torch._utils._unflatten_dense_tensors(flat / WORLD, grads), strict=True):
            g.copy_(new)

    return _trainer(model, rank, reduce)


def fsdp(rank: int, delay: float):
    from torch.distributed.fsdp import fully_shard  # here, not at import: older torch lacks it

    model = mlp(4, delay, 10)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    return _trainer(model, rank, lambda: None)


def _trainer(model: nn.Module, rank: int, reduce):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = data(rank)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        reduce()
        opt.step()

    return step


def dp2pp2(rank: int, delay: float, micro: int = 1):
    dp_rank, stage = rank % 2, rank // 2
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every rank creates every group
    group, peer = groups[stage], rank + 2 if stage == 0 else rank - 2
    model = mlp(2, delay / micro, WIDTH if stage == 0 else 10)  # the same delay per step as the others
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = data(dp_rank)
    xs, ys = x.chunk(micro), y.chunk(micro)

    def step():
        opt.zero_grad()
        outs, ins = [], []
        for m in range(micro):  # forward of every micro-batch, then backward (GPipe; --micro 1: none overlap)
            if stage == 0:
                out = model(xs[m])
                dist.send(out.detach(), peer)
            else:
                inp = torch.empty(xs[m].shape)
                dist.recv(inp, peer)
                inp.requires_grad_()
                out = nn.functional.cross_entropy(model(inp), ys[m])
                ins.append(inp)
            outs.append(out)
        for m in range(micro):
            if stage == 0:
                grad = torch.empty(outs[m].shape)
                dist.recv(grad, peer)
                outs[m].backward(grad)
            else:
                outs[m].backward()
                dist.send(ins[m].grad, peer)
        grads = [p.grad for p in model.parameters()]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=group)
        for g, new in zip(grads, torch._utils._unflatten_dense_tensors(flat / 2, grads), strict=True):
            g.copy_(new)
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=JOBS, required=True)
    parser.add_argument("--slow-rank", type=int, default=-1, help="the rank that sleeps (default: none)")
    parser.add_argument("--delay", type=float, default=0.04, help="seconds it sleeps per step (default: 0.04)")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps (default: 4)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        args.port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        mp.spawn(run, args=(args,), nprocs=WORLD)
    print(json.dumps({"job": args.job, "slow_rank": args.slow_rank, "delay": args.delay, "out": str(args.out)}))


if __name__ == "__main__":
    main()
