"""The parameter server's capacity (``--ps-service``, ``--ps-servers``): updates queue behind each
other, and a pull waits for the updates decided before it."""

import heapq

import pytest
from conftest import raises_as_cli, run, update_times
from stragglersim.core import fastpath
from stragglersim.core.assemble import assemble
from stragglersim.core.config import RunConfig


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [("async", {}), ("sync", {}), ("backup", {"backups": 1, "semantics": "drop"}), ("softsync", {"softsync_n": 1})],
)
def test_one_worker_cycles_through_pull_compute_push_and_service(strategy, extra):
    """One worker, constant times: every update takes pull + X + push + service, whatever the strategy."""
    workers = 1
    _, log = run(
        strategy=strategy,
        workers=workers,
        latency="constant:value=1",
        comm_latency=0.25,
        ps_service=0.5,
        steps=6,
        timing_only=True,
        **extra,
    )
    if strategy == "backup":  # the backup's computation is dropped: one update per cycle still
        assert [u.time for u in log.updates] == pytest.approx([2.0 * k for k in range(1, 7)])
    else:
        assert update_times(log) == pytest.approx([2.0 * k for k in range(1, 7)])


def test_async_saturates_the_server():
    """Four workers of 1 s against 0.5 s per update: the server is the bottleneck, one update every 0.5 s
    after the first (min(P / (X + s), 1 / s) = 2 per second)."""
    _, log = run(strategy="async", workers=4, latency="constant:value=1", ps_service=0.5, steps=40, timing_only=True)
    times = update_times(log)
    assert times[0] == 1.5
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([0.5] * 39)


def test_sync_pays_one_service_per_update():
    """Sync N = 5 pays the service once per update of 5 gradients; async pays it per gradient."""
    _, log = run(strategy="sync", workers=5, latency="constant:value=1", ps_service=0.5, steps=4, timing_only=True)
    assert update_times(log) == pytest.approx([1.5, 3.0, 4.5, 6.0])


def _queue_reference(factors, service, pull_push, steps):
    """An independent model of async SGD against a FIFO server: worker w computes for factors[w] s; its
    gradient's update is applied at max(arrival, server free) + service; it then pulls and computes again."""
    arrivals = [(pull_push + f + pull_push, w) for w, f in enumerate(factors)]
    heapq.heapify(arrivals)
    free, times = 0.0, []
    while len(times) < steps:
        arrival, w = heapq.heappop(arrivals)
        free = max(arrival, free) + service
        times.append(free)
        heapq.heappush(arrivals, (free + pull_push + factors[w] + pull_push, w))
    return times


@pytest.mark.parametrize("service", [0.05, 0.4, 1.3])
def test_async_matches_an_independent_queue_model(service):
    """Worker speeds that never tie, a light, a moderate and a saturating service time."""
    factors = [1.0, 1.37, 1.91, 2.63, 3.17]
    _, log = run(
        strategy="async",
        workers=5,
        latency="constant:value=1",
        speed_factors=",".join(map(str, factors)),
        comm_latency=0.01,
        ps_service=service,
        steps=60,
        timing_only=True,
    )
    assert update_times(log) == pytest.approx(_queue_reference(factors, service, 0.01, 60), abs=1e-9)
    # A pull waits for the queued updates: a gradient read every update decided before its computation.
    decided = update_times(log)
    for g in log.gradients:
        assert g.version == sum(t <= g.start - 0.01 + 1e-12 for t in decided)


def test_servers_share_the_service_time_and_the_link():
    """S servers each apply and receive a 1/S shard: the same times as one server of service/S and S-fold
    bandwidth (the shards are applied in parallel)."""
    common = dict(strategy="async", workers=6, latency="exponential:rate=1", steps=200, timing_only=True)
    common.update(param_bytes=1000.0, seed=3)
    _, sharded = run(**common, ps_service=0.3, ps_servers=3, ps_bandwidth=1e4)
    _, single = run(**common, ps_service=0.1, ps_bandwidth=3e4)
    assert update_times(sharded) == pytest.approx(update_times(single), rel=1e-12)


def test_no_service_time_leaves_every_number_alone():
    _, plain = run(strategy="async", workers=6, latency="exponential:rate=1", steps=300, timing_only=True)
    _, zero = run(
        strategy="async", workers=6, latency="exponential:rate=1", steps=300, timing_only=True, ps_service=0.0
    )
    assert update_times(plain) == update_times(zero)
    assert RunConfig().to_dict() == RunConfig(ps_service=None, ps_servers=None).to_dict()  # digests unchanged


def test_a_served_run_skips_the_fast_path():
    config = RunConfig(strategy="sync", workers=4, steps=10, timing_only=True, log_gradients="none")
    assert fastpath.applies(assemble(config))
    assert not fastpath.applies(assemble(RunConfig(**{**config.to_dict(), "ps_service": 0.1})))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"ps_service": -1.0}, r"--ps-service must be a finite number >= 0"),
        ({"ps_service": float("inf")}, r"--ps-service must be a finite number >= 0"),
        ({"ps_servers": 0}, r"--ps-servers must be an integer >= 1"),
        ({"ps_servers": 2}, r"--ps-servers must be 1 unless --ps-service or --ps-bandwidth"),  # nothing to share
    ],
)
def test_bad_capacity_is_refused(fields, match):
    with raises_as_cli(match):
        RunConfig(**fields).validate()
