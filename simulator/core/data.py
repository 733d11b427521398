"""Per-worker data streams: worker w's d-th mini-batch, as indices into the training set.

The d-th batch of worker w depends only on (seed, w, d), like its d-th computation time, so
a gradient that is dropped and never computed does not shift anyone's data.

- ``shared``: every worker samples its batches i.i.d. (with replacement) from the whole set.
- ``sharded``: a fixed permutation splits the set into one shard per worker; worker w sweeps
  its shard in epochs, reshuffled each epoch. A persistently slow worker's shard is then
  under-represented in the updates, as on a real cluster.
- ``by-work``: as ``sharded``, but the shards are contiguous ranges of the examples sorted by
  their work (see ``workload.py``): worker 0 gets the lightest examples.

The rule in plain NumPy (the README repeats it; ``tests/test_reference.py`` re-derives it), with
``rng(*key) = default_rng(SeedSequence(seed, spawn_key=key))``:

- ``shared``: batch d of worker w is ``rng(2, w, d // 64).integers(0, n_train, size=(64,
  batch_size), dtype=int32)[d % 64]``;
- ``sharded``: shard w is ``rng(3).permutation(n_train)[w::n_workers]``; example i of batch d sits
  at position p = d * batch_size + i of the worker's sweep and is
  ``shard[rng(2, w, p // len(shard)).permutation(len(shard))[p % len(shard)]]``.
"""

from __future__ import annotations

import numpy as np

from .streams import Stream, stream

BLOCK = 64  # batches drawn at once in ``shared`` mode


class WorkerBatches:
    """Mini-batch indices for every worker of a run.

    Args:
        n_train: size of the training set.
        batch_size: examples per mini-batch.
        n_workers: workers in the run.
        partition: ``shared`` or ``sharded``.
        seed: the run seed.
    """

    def __init__(self, n_train: int, batch_size: int, n_workers: int, partition: str, seed: int, work=None):
        self.n_train, self.batch_size, self.partition, self.seed = n_train, batch_size, partition, seed
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        if partition in ("sharded", "by-work"):
            order = stream(seed, Stream.SHARD).permutation(n_train)
            if partition == "by-work":
                if work is None:
                    raise ValueError("--data-partition by-work needs the examples' work (--data-cost)")
                order = order[np.argsort(work[order], kind="stable")]
                self.shards = np.array_split(order, n_workers)
            else:
                self.shards = [order[w::n_workers] for w in range(n_workers)]
            if min(len(s) for s in self.shards) == 0:
                raise ValueError(f"{n_workers} workers need at least {n_workers} training examples to shard")

    def indices(self, worker: int, d: int) -> np.ndarray:
        """Indices (int32, shape ``(batch_size,)``) of worker ``worker``'s ``d``-th mini-batch."""
        if self.partition == "shared":
            block = self._block(worker, d // BLOCK)
            return block[d % BLOCK]
        shard = self.shards[worker]
        positions = d * self.batch_size + np.arange(self.batch_size)
        epochs, offsets = np.divmod(positions, len(shard))
        out = np.empty(self.batch_size, np.int32)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            out[sel] = shard[self._block(worker, int(epoch))[offsets[sel]]]
        return out

    def many(self, workers, ds) -> np.ndarray:
        """:meth:`indices` of many mini-batches at once: ``workers`` and ``ds`` are int arrays
        (or lists) of one shape S; the result (int32) has shape S + ``(batch_size,)``. In
        ``shared`` mode it is one gather from the blocks the batches fall in (a chunk of
        updates touches one or two blocks per worker), not one Python call per mini-batch."""
        workers, ds = np.asarray(workers, np.int64), np.asarray(ds, np.int64)
        if self.partition != "shared":
            flat = [self.indices(int(w), int(d)) for w, d in zip(workers.ravel(), ds.ravel(), strict=True)]
            return np.asarray(flat, np.int32).reshape(workers.shape + (self.batch_size,))
        j = ds // BLOCK
        first = int(j.min())
        span = int(j.max()) - first + 1
        key = workers * span + (j - first)  # dense: (worker, block) -> one int
        used = np.zeros(int(workers.max()) * span + span, np.intp)
        used[key] = 1
        keys = np.flatnonzero(used)
        used[keys] = np.arange(len(keys))  # key -> position in the stack of blocks
        blocks = np.stack([self._block(int(k // span), int(k % span) + first) for k in keys])
        return blocks[used[key], ds % BLOCK]

    def _block(self, worker: int, j: int) -> np.ndarray:
        """``shared``: batches [j*BLOCK, (j+1)*BLOCK) of the worker; ``sharded``: epoch j's order."""
        key = (worker, j)
        block = self._blocks.get(key)
        if block is None:
            rng = stream(self.seed, Stream.DATA, worker, j)
            if self.partition == "shared":
                block = rng.integers(0, self.n_train, size=(BLOCK, self.batch_size), dtype=np.int32)
            else:
                block = rng.permutation(len(self.shards[worker]))
            if len(self._blocks) > 4096:  # bound the cache; blocks are cheap to redraw
                self._blocks.clear()
            self._blocks[key] = block
        return block
