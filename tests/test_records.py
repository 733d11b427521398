"""The records of a run: the compact log of ``--log-gradients none`` folds in linear time and
loses no number."""

import pytest
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.io.records import CompactLog


def _compact_run(config: RunConfig, limit: int) -> CompactLog:
    sim = Simulation(RunConfig(**{**config.to_dict(), "log_gradients": "none"}))
    sim.log.limit = limit  # far fewer than the computations in flight: the case that was quadratic
    return sim.run()


def test_folding_visits_a_bounded_number_of_records_per_gradient():
    """With more computations in flight than the fold limit, the records the folds visit grow
    linearly in the gradients created: 4x the workers is about 4x the work, not 16x."""
    work = {}
    for workers in (200, 800):
        config = RunConfig(strategy="backup", semantics="tf", workers=workers, backups=4, steps=4, timing_only=True)
        log = _compact_run(config, limit=16)
        assert log.created > 4 * workers
        assert log.visited <= 3 * log.created, f"{workers} workers: {log.visited} records visited"
        work[workers] = log.visited
    assert work[800] <= 6 * work[200]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "backup", "semantics": "tf", "workers": 60, "backups": 5},
        {"strategy": "backup", "semantics": "cancel", "workers": 60, "backups": 5},
        {"strategy": "async", "workers": 60},
    ],
    ids=["tf", "cancel", "async"],
)
def test_a_compact_log_with_many_workers_counts_the_same_fates_and_staleness(kwargs):
    config = RunConfig(steps=40, seed=3, timing_only=True, **kwargs)
    full = Simulation(config).run()
    compact = _compact_run(config, limit=8)
    assert compact.visited > 0  # it did fold, while many computations were in flight
    assert compact.fate_counts() == full.fate_counts()
    assert compact.staleness_stats() == full.staleness_stats()
    assert compact.summary(config) == full.summary(config)
    assert list(compact.update_lines()) == list(full.update_lines())
