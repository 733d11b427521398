"""Per-worker mini-batch streams."""

import numpy as np
from stragglersim.core.data import WorkerBatches


def test_batches_depend_only_on_seed_worker_and_index():
    a = WorkerBatches(1000, 16, 4, "shared", seed=1)
    b = WorkerBatches(1000, 16, 9, "shared", seed=1)  # more workers: worker 2's stream is unchanged
    for d in (0, 5, 63, 64, 200):
        np.testing.assert_array_equal(a.indices(2, d), b.indices(2, d))
    assert not np.array_equal(a.indices(2, 0), a.indices(3, 0))
    assert not np.array_equal(a.indices(2, 0), WorkerBatches(1000, 16, 4, "shared", seed=2).indices(2, 0))
    assert a.indices(0, 7).shape == (16,) and a.indices(0, 7).max() < 1000


def test_sharded_workers_sweep_their_own_shard_in_epochs():
    b = WorkerBatches(100, 8, 3, "sharded", seed=0)
    shards = [set(s.tolist()) for s in b.shards]
    assert set().union(*shards) == set(range(100)) and sum(len(s) for s in shards) == 100
    shard = b.shards[1]
    seen = np.concatenate([b.indices(1, d) for d in range(len(shard))])  # 8 epochs' worth
    assert set(seen.tolist()) == set(shard.tolist())
    counts = np.bincount(seen, minlength=100)[shard]
    assert (counts == 8).all()  # every example exactly once per epoch


def test_many_batches_at_once_are_the_batches_one_by_one():
    rng = np.random.default_rng(0)
    for partition in ("shared", "sharded"):
        b = WorkerBatches(500, 8, 6, partition, seed=3)
        workers, ds = rng.integers(0, 6, (5, 4)), rng.integers(0, 300, (5, 4))  # spans several blocks
        many = b.many(workers, ds)
        assert many.shape == (5, 4, 8) and many.dtype == np.int32
        for i, j in np.ndindex(5, 4):
            np.testing.assert_array_equal(many[i, j], b.indices(int(workers[i, j]), int(ds[i, j])))


def test_sharding_refuses_too_few_examples_and_by_work_without_work():
    import pytest

    with pytest.raises(ValueError, match="8 workers need at least 8 training examples to shard"):
        WorkerBatches(5, 2, 8, "sharded", seed=0)
    with pytest.raises(ValueError, match="by-work needs the examples' work"):
        WorkerBatches(100, 2, 4, "by-work", seed=0)


def test_the_bounded_block_cache_redraws_the_same_batches():
    b = WorkerBatches(4, 4, 1, "sharded", seed=3)  # a shard of 4, a batch of 4: one epoch (block) per batch
    first = [b.indices(0, d) for d in range(3)]
    for d in range(3, 4100):  # past the cache's 4096 blocks: it is cleared
        b.indices(0, d)
    assert len(b._blocks) < 4096
    for d in range(3):
        np.testing.assert_array_equal(b.indices(0, d), first[d])
