"""Exact event logs with constant latencies: who finished when, and each gradient's fate.

Worker w takes ``speed_factors[w]`` seconds per computation, so stragglers are planned.
Rows: (worker, index, version read, step, start, end, fate, update). Ties at the same
instant are served in the order the events were scheduled (SimPy's FIFO), which the
expected logs spell out.
"""

from conftest import events, run, update_times

A, L, S, C, U = "applied", "dropped_late", "dropped_stale", "cancelled", "unfinished"
STRAGGLER = {"latency": "constant:value=1", "speed_factors": "1,1.5,2.5"}


def test_sync_waits_for_the_slowest_worker():
    _, log = run(strategy="sync", workers=3, steps=2, **STRAGGLER)
    assert update_times(log) == [2.5, 5.0]
    assert all(len(u.gradients) == 3 for u in log.updates)
    assert {g.fate for g in log.gradients} == {A}


def test_cancel_abandons_the_straggler_at_each_update():
    _, log = run(strategy="backup", workers=2, backups=1, semantics="cancel", steps=2, **STRAGGLER)
    assert events(log) == [
        (0, 0, 0, 0, 0.0, 1.0, A, 1),
        (1, 0, 0, 0, 0.0, 1.5, A, 1),
        (2, 0, 0, 0, 0.0, 1.5, C, None),  # cancelled at the update, 1 s before it would finish
        (1, 1, 1, 1, 1.5, 3.0, A, 2),  # the pusher that completed update 1 restarts first
        (2, 1, 1, 1, 1.5, 3.0, C, None),
        (0, 1, 1, 1, 1.5, 2.5, A, 2),  # woken by the update
    ]
    assert update_times(log) == [1.5, 3.0]


def test_cancel_with_transfer_times():
    """Pull and push each take 0.25 s: the update lands when the N-th push arrives."""
    _, log = run(strategy="backup", workers=2, backups=1, semantics="cancel", steps=2, comm_latency=0.25, **STRAGGLER)
    assert events(log) == [
        (0, 0, 0, 0, 0.25, 1.25, A, 1),
        (1, 0, 0, 0, 0.25, 1.75, A, 1),
        (2, 0, 0, 0, 0.25, 2.0, C, None),
        (1, 1, 1, 1, 2.25, 3.75, A, 2),
        (2, 1, 1, 1, 2.25, 4.0, C, None),
        (0, 1, 1, 1, 2.25, 3.25, A, 2),
    ]
    assert update_times(log) == [2.0, 4.0]


def test_drop_lets_the_straggler_finish_then_drops_it():
    _, log = run(strategy="backup", workers=2, backups=1, semantics="drop", steps=3, **STRAGGLER)
    assert events(log) == [
        (0, 0, 0, 0, 0.0, 1.0, A, 1),
        (1, 0, 0, 0, 0.0, 1.5, A, 1),
        (2, 0, 0, 0, 0.0, 2.5, L, None),  # arrives at 2.5, after update 1
        (1, 1, 1, 1, 1.5, 3.0, A, 2),
        (0, 1, 1, 1, 1.5, 2.5, A, 2),
        (2, 1, 1, 1, 2.5, 5.0, U, None),  # restarted at once on the newest parameters
        (1, 2, 2, 2, 3.0, 4.5, A, 3),
        (0, 2, 2, 2, 3.0, 4.0, A, 3),
    ]
    assert log.gradients[2].staleness == 1


def test_tf_token_queue_wastes_leftover_tokens():
    """TF starts with N tokens of step 0: the first two pushers compute again for step 0,
    and those gradients are dropped; so update 2 waits for a full extra round."""
    _, log = run(strategy="backup", workers=2, backups=1, semantics="tf", steps=3, **STRAGGLER)
    assert events(log) == [
        (0, 0, 0, 0, 0.0, 1.0, A, 1),
        (1, 0, 0, 0, 0.0, 1.5, A, 1),
        (2, 0, 0, 0, 0.0, 2.5, L, None),
        (0, 1, 0, 0, 1.0, 2.0, L, None),  # initial token of step 0, arrives after update 1
        (1, 1, 1, 0, 1.5, 3.0, L, None),  # fresh parameters, but a stale token
        (0, 2, 1, 1, 2.0, 3.0, A, 2),
        (2, 1, 1, 1, 2.5, 5.0, L, None),
        (1, 2, 1, 1, 3.0, 4.5, A, 2),
        (1, 3, 2, 2, 4.5, 6.0, A, 3),
        (0, 3, 2, 2, 4.5, 5.5, A, 3),
        (2, 2, 2, 2, 5.0, 7.5, U, None),
    ]
    assert update_times(log) == [1.5, 4.5, 6.0]


def test_tf_fast_worker_contributes_twice_to_one_update():
    config, log = run(
        strategy="backup",
        workers=2,
        backups=1,
        semantics="tf",
        steps=2,
        latency="constant:value=1",
        speed_factors="1,3,3",
    )
    assert events(log) == [
        (0, 0, 0, 0, 0.0, 1.0, A, 1),
        (1, 0, 0, 0, 0.0, 3.0, L, None),
        (2, 0, 0, 0, 0.0, 3.0, L, None),
        (0, 1, 0, 0, 1.0, 2.0, A, 1),  # worker 0 again, on an initial token of step 0
        (0, 2, 1, 0, 2.0, 3.0, L, None),
        (1, 1, 1, 1, 3.0, 6.0, A, 2),
        (2, 1, 1, 1, 3.0, 6.0, U, None),
        (0, 3, 1, 1, 3.0, 4.0, A, 2),
    ]
    assert [g.worker for g in log.updates[0].gradients] == [0, 0]
    assert log.summary(config)["repeat_contributions"] == 1


def test_async_applies_every_gradient_with_its_staleness():
    _, log = run(strategy="async", workers=3, steps=6, latency="constant:value=1", speed_factors="1,2,3.5")
    assert events(log) == [
        (0, 0, 0, 0, 0.0, 1.0, A, 1),
        (1, 0, 0, 0, 0.0, 2.0, A, 2),
        (2, 0, 0, 0, 0.0, 3.5, A, 5),
        (0, 1, 1, 1, 1.0, 2.0, A, 3),
        (1, 1, 2, 2, 2.0, 4.0, A, 6),
        (0, 2, 3, 3, 2.0, 3.0, A, 4),
        (0, 3, 4, 4, 3.0, 4.0, U, None),
        (2, 1, 5, 5, 3.5, 7.0, U, None),
    ]
    assert [g.staleness for g in log.gradients[:6]] == [0, 1, 4, 1, 3, 0]


def test_async_staleness_cutoff_drops_stale_gradients():
    config, log = run(
        strategy="async", workers=3, steps=6, staleness_cutoff=1, latency="constant:value=1", speed_factors="1,2,3.5"
    )
    assert [(g.worker, g.index, g.fate, g.staleness) for g in log.gradients] == [
        (0, 0, A, 0),
        (1, 0, A, 1),
        (2, 0, S, 4),
        (0, 1, A, 1),
        (1, 1, S, 2),
        (0, 2, A, 0),
        (0, 3, A, 0),
        (2, 1, U, None),
        (1, 2, U, None),
        (0, 4, A, 0),
    ]
    summary = log.summary(config)
    assert summary["gradients_dropped"] == 2 and summary["max_staleness"] == 1


def test_no_cycle_begins_after_the_last_update():
    _, log = run(strategy="backup", workers=2, backups=1, semantics="cancel", steps=2, **STRAGGLER)
    assert max(g.start for g in log.gradients) < log.updates[-1].time
