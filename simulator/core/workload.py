"""Data-dependent computation cost: a mini-batch with more work takes longer.

With ``data_cost = "nnz"`` the work of an example is its number of non-zero inputs (the cost
driver of sparse models; for images, the inked pixels). Worker w's d-th computation takes its
drawn time times (work of w's d-th mini-batch) / (mean work of a mini-batch). With
``--data-partition by-work`` the shards are contiguous ranges of examples sorted by work, so
workers have persistently different loads: imbalance, not only noise.
"""

from __future__ import annotations

import numpy as np

from .data import WorkerBatches


def example_work(x: np.ndarray) -> np.ndarray:
    """Non-zero inputs per example (at least 1)."""
    return np.maximum(1, np.count_nonzero(x.reshape(len(x), -1), axis=1)).astype(float)


def work_model(config, dataset):
    """``(worker, index) -> factor`` for the run's ``dataset`` and mini-batch streams."""
    work = example_work(dataset.x_train)
    batches = WorkerBatches(
        len(work), config.batch_size, config.total_workers, config.data_partition, config.seed, work=work
    )
    mean_batch = work.mean() * config.batch_size

    def factor(worker: int, index: int) -> float:
        return float(work[batches.indices(worker, index)].sum() / mean_batch)

    return factor
