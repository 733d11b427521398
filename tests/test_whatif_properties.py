"""Invariants of the replay on the shipped ST schedule (hypothesis): a longer op never shortens a
step, a backup replica never delays an update, and at most B of dp_size gradients are dropped."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from stragglersim.llm import model as llm_model
from stragglersim.llm import trace as llm_trace
from stragglersim.llm.replay import measured, no_delay, replay

SHIPPED = Path(__file__).resolve().parent.parent / "traces" / "llm-whatif"


@cache
def st_job():
    trace = llm_trace.load(SHIPPED / "trace-ST.parquet", llm_trace.read_meta(SHIPPED / "meta-ST.yaml"))
    model = llm_model.build(trace)
    return trace, model, no_delay(measured(trace, model)[0])


ops = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 1), st.floats(0.0, 2.0))


@settings(max_examples=40, deadline=None)
@given(op=ops, backups=st.integers(0, 1))
def test_a_longer_op_never_shortens_a_step(op, backups):
    trace, model, base = st_job()
    n_slots, n_steps, dp = base.duration.shape
    slot, step, rank, extra = op[0] % n_slots, op[1] % n_steps, op[2] % dp, op[3]
    longer = replace(base, duration=base.duration.copy(), transfer=base.transfer.copy())
    longer.duration[slot, step, rank] += extra
    longer.transfer[slot, step, rank] += extra
    before, after = replay(trace, model, base, backups=backups), replay(trace, model, longer, backups=backups)
    assert np.all(after.step_times >= before.step_times - 1e-12)
    assert np.all(after.update >= before.update - 1e-12)


@settings(max_examples=20, deadline=None)
@given(scale=st.lists(st.floats(0.5, 3.0), min_size=2, max_size=2))
def test_a_backup_never_delays_an_update_and_drops_at_most_b(scale):
    trace, model, base = st_job()
    factor = np.array(scale)[None, None, :]  # one replica slower or faster than the other
    slowed = replace(base, duration=base.duration * factor, transfer=base.transfer * factor)
    zero, one = replay(trace, model, slowed, backups=0), replay(trace, model, slowed, backups=1)
    assert np.all(one.update <= zero.update + 1e-12)
    assert zero.dropped == 0.0 and one.dropped <= 0.5
