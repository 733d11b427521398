"""The engine (and the fast path, where it serves) against the independent reference event model.

Hypothesis draws configurations across the whole option space, corners on purpose: worker counts
that a strategy's group size does not divide (softsync's n, K, k-batch), B > N, one worker, exact
ties (constant latencies, integer speed factors, integer transfer times), every system effect
(fail-slow episodes, failures by schedule or by rate, heterogeneous speeds, transfer latency and
bandwidth, a shared PS link) with non-zero transfer times, and exact trace replay. The event logs
must agree exactly: each computation's worker, draw index, version, step, start, end, fate,
update and staleness, and each update's time and contributors.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from reference_model import Reference
from stragglersim.core.assemble import RunInputs, assemble
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import simulate
from stragglersim.core.fastpath import applies, fast_simulate
from stragglersim.core.streams import Stream, stream
from stragglersim.io.errors import InputError

LATENCIES = [
    "constant:value=1",  # every draw ties
    "exponential:rate=1",
    "lognormal:mu=0,sigma=0.5",
    "shifted-exponential:shift=0.5,rate=2",
    "pareto:alpha=2.5,scale=0.5",
]
STRATEGIES = [
    ("sync", None),
    ("backup", "tf"),
    ("backup", "drop"),
    ("backup", "cancel"),
    ("async", None),
    ("softsync", None),
    ("k-sync", None),
    ("k-batch-sync", None),
    ("k-async", None),
    ("k-batch-async", None),
    ("ssp", None),
    ("deadline", None),
    ("adaptive-backup", None),
]


@functools.lru_cache(maxsize=64)
def inputs(config: RunConfig) -> RunInputs:
    """The run's inputs, assembled (and validated) once per configuration."""
    return assemble(config)


def handed_draws(config: RunConfig):
    """Worker w's d-th raw computation time (speed factor 1): the draws the reference is handed."""
    model = inputs(config).cluster.model
    streams: dict[int, tuple] = {}

    def draw(w: int, d: int) -> float:
        if w not in streams:
            streams[w] = (model.stream_for(w, stream(config.seed, Stream.LATENCY, w), 1.0), [])
        source, values = streams[w]
        while len(values) <= d:
            values.append(source())
        return values[d]

    return draw


def fail_slow_periods(config: RunConfig):
    p = dict(x.split("=") for x in config.fail_slow.split(","))
    normal, slow = float(p["normal"]), float(p["slow"])

    def periods(w: int):
        rng = stream(config.seed, Stream.FAILSLOW, w)
        while True:
            yield rng.exponential(normal)
            yield rng.exponential(slow)

    return periods


def failure_spans(config: RunConfig):
    p = dict(x.split("=") for x in config.failures.split(","))
    rate, downtime = float(p["rate"]), float(p["downtime"])

    def spans(w: int):
        rng, t = stream(config.seed, Stream.FAILURE, w), 0.0
        while True:
            down = t + rng.exponential(1 / rate)
            t = down + rng.exponential(downtime)
            yield down, t

    return spans


def reference(config: RunConfig) -> Reference:
    return Reference(
        config,
        handed_draws(config),
        fail_slow=fail_slow_periods(config) if config.fail_slow else None,
        failure_spans=failure_spans(config) if config.failures else None,
    ).run()


def engine_records(log) -> list[tuple]:
    return [
        (g.worker, g.index, g.version, g.step, g.start, g.end, g.fate, g.update, g.staleness) for g in log.gradients
    ]


def _draw_key(record: tuple) -> tuple:
    return record[:2]


def reference_records(ref: Reference) -> list[tuple]:
    keys = ("worker", "index", "version", "step", "start", "end", "fate", "update", "staleness")
    return [tuple(g[k] for k in keys) for g in ref.gradients]


def brief(config: RunConfig) -> str:
    """The fields that differ from the defaults: enough to rerun a failing example."""
    default = RunConfig()
    return ", ".join(f"{k}={v!r}" for k, v in vars(config).items() if getattr(default, k) != v)


def assert_same_log(config: RunConfig, log, ref: Reference, *, ordered: bool = True) -> None:
    """The same computations with the same fates, and the same updates from the same
    computations; ``ordered``: in the same order (the engine logs in event order; the fast path
    logs each update's computations by worker)."""
    got, want = engine_records(log), reference_records(ref)
    if not ordered:
        got, want = sorted(got, key=_draw_key), sorted(want, key=_draw_key)
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        assert a == b, f"{brief(config)}\ncomputation {i}: engine {a} != reference {b}"
    assert len(got) == len(want), f"{brief(config)}\n{len(got)} computations, reference {len(want)}"
    assert [u.time for u in log.updates] == [t for t, _ in ref.updates], brief(config)
    assert [sorted((g.worker, g.index) for g in u.gradients) for u in log.updates] == [
        sorted((g["worker"], g["index"]) for g in gs) for _, gs in ref.updates
    ], brief(config)
    assert log.exhausted == ref.exhausted and (log.stalled is not None) == ref.stalled, brief(config)


def assert_same_counts(config: RunConfig, log, ref: Reference) -> None:
    """What the fast path keeps without per-gradient records: update times, fates, staleness."""
    times = np.cumsum(log.iteration_times())
    np.testing.assert_allclose(times, [t for t, _ in ref.updates], rtol=1e-12, atol=0, err_msg=brief(config))
    fates = {}
    for g in ref.gradients:
        fates[g["fate"]] = fates.get(g["fate"], 0) + 1
    counts = log.fate_counts()
    assert {f: n for f, n in counts.items() if n} == fates, brief(config)
    applied = [g["staleness"] for g in ref.gradients if g["fate"] == "applied"]
    total, n, top = log.staleness_stats()
    assert (total, n, top) == (float(sum(applied)), len(applied), max(applied, default=0)), brief(config)


@st.composite
def configs(draw, strategy: str, semantics: str | None, *, trace_dir=None):
    workers = draw(st.integers(1, 7))
    fields: dict = dict(strategy=strategy, workers=workers, timing_only=True, seed=draw(st.integers(0, 3)))
    if semantics:
        fields["semantics"] = semantics
    if strategy == "backup":
        fields["backups"] = draw(st.integers(0, 6))  # B > N too
    if strategy == "async" and draw(st.booleans()):
        fields["staleness_cutoff"] = draw(st.integers(0, 4))
    if strategy == "softsync":
        fields["softsync_n"] = draw(st.integers(1, workers))  # n need not divide P
    if strategy.startswith("k-"):
        fields["k"] = draw(st.integers(1, workers))
    if strategy == "ssp":
        fields["ssp_bound"] = draw(st.integers(0, 3))
    if strategy == "deadline":
        fields["deadline"] = draw(st.sampled_from([0.3, 1.0, 1.5, 2.0]))  # 1.0 and 2.0 tie with constant times
    if strategy == "adaptive-backup":
        fields["adapt_every"] = draw(st.integers(1, 4))
        fields["batch_size"] = draw(st.sampled_from([1, 32]))
        if draw(st.booleans()):
            fields["noise_scale"] = draw(st.sampled_from([1.0, 100.0, 1e4]))
    total = workers + fields.get("backups", 0) if strategy in ("sync", "backup") else workers
    fields["steps"] = draw(st.integers(1, 25))
    if trace_dir is not None and draw(st.integers(0, 5)) == 0:
        rows = draw(st.integers(1, 12))
        durations = draw(st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0]), min_size=total * rows, max_size=total * rows))
        text = "worker,step,duration\n" + "".join(
            f"{w},{s},{durations[w * rows + s]}\n" for w in range(total) for s in reversed(range(rows))
        )
        path = trace_dir / f"trace-{hashlib.sha1(text.encode()).hexdigest()[:16]}.csv"  # one name per content
        path.write_text(text)
        fields["latency"] = f"trace:{path}"
        if draw(st.booleans()):
            fields["steps"] = None  # until a worker's trace is used up
    else:
        fields["latency"] = draw(st.sampled_from(LATENCIES))
    if draw(st.integers(0, 3)) == 0:  # no system effect (heterogeneous speeds aside): the fast path's runs
        if draw(st.booleans()):
            fields["speed_factors"] = draw(
                st.sampled_from(["", "2,2,2,2,2,2,2,2,2,2,2,2,2", "1,3,1,0.5,2,1,1,2,3,1,2,1,1"])
            )
        return _valid(RunConfig(**fields))
    if draw(st.booleans()):
        fields["speed_factors"] = ",".join(str(draw(st.sampled_from([1, 1, 2, 3, 0.5]))) for _ in range(total))
    if draw(st.booleans()):
        fields["comm_latency"] = draw(st.sampled_from([0.25, 0.5, 1.0]))
    if draw(st.booleans()):
        fields["param_bytes"] = draw(st.sampled_from([1e6, 4e6]))
        fields["bandwidth"] = draw(st.sampled_from([1e7, 4e6, math.inf]))
        if draw(st.booleans()):
            fields["ps_bandwidth"] = draw(st.sampled_from([4e6, 1e7, 2e7]))  # a shared, queueing PS link
    if draw(st.booleans()):
        fields["fail_slow"] = draw(st.sampled_from(["normal=3,slow=1,factor=3", "normal=0.5,slow=0.5,factor=1.5"]))
    faults = draw(st.integers(0, 3))
    if faults == 1:
        fields["failures"] = draw(st.sampled_from(["rate=0.1,downtime=2", "rate=0.5,downtime=0.5"]))
    elif faults == 2:
        worker = draw(st.integers(0, total - 1))
        down = draw(st.sampled_from([0.0, 1.0, 2.5, 3.0]))
        span = f"{worker}@{down:g}" + (f"-{down + draw(st.sampled_from([1.0, 2.0])):g}" if draw(st.booleans()) else "")
        fields["fail_at"] = span
    return _valid(RunConfig(**fields))


def _valid(config: RunConfig) -> RunConfig:
    try:
        inputs(config)
    except InputError:
        assume(False)
    return config


def _event(text: str) -> None:
    """Hypothesis's ``event`` inside a hypothesis test; nothing elsewhere."""
    try:
        event(text)
    except InvalidArgument:
        pass


def check(config: RunConfig) -> None:
    _event(f"strategy {config.strategy}/{config.semantics or '-'}")
    for effect in ("fail_slow", "fail_at", "failures", "speed_factors"):
        if getattr(config, effect):
            _event(effect)
    if config.ps_bandwidth < math.inf and config.param_bytes:
        _event("shared PS link")
    if config.latency.startswith("trace:"):
        _event("trace replay")
    ref = reference(config)
    _event(f"updates {'all' if len(ref.updates) == config.steps else 'fewer'}; stalled {ref.stalled}")
    run = inputs(config)
    assert_same_log(config, simulate(run), ref)
    if config.steps is not None and applies(run):
        assert _barrier(config)  # per-gradient records: the barrier recursion's only
        assert_same_log(config, fast_simulate(run, records=True), ref, ordered=False)
    quiet = dataclasses.replace(run, config=dataclasses.replace(config, log_gradients="none"))
    if config.steps is not None and applies(quiet):
        _event("fast path")
        assert_same_counts(quiet.config, fast_simulate(quiet, records=False), ref)


def _barrier(config: RunConfig) -> bool:
    from stragglersim.core.recursions import recursion

    return recursion(config) == "barrier"


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FAMILIES = pytest.mark.parametrize(
    ("strategy", "semantics"), STRATEGIES, ids=[f"{a}-{b}" if b else a for a, b in STRATEGIES]
)


@FAMILIES
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_engine_equals_the_reference(strategy, semantics, data, tmp_path_factory):
    """20 configurations per strategy and semantics (260 in all)."""
    check(data.draw(configs(strategy, semantics, trace_dir=tmp_path_factory.getbasetemp())))


@pytest.mark.slow
@FAMILIES
@settings(max_examples=400, **SETTINGS)
@given(data=st.data())
def test_engine_equals_the_reference_at_length(strategy, semantics, data, tmp_path_factory):
    """400 per strategy and semantics (5,200 in all)."""
    check(data.draw(configs(strategy, semantics, trace_dir=tmp_path_factory.getbasetemp())))


@pytest.mark.parametrize(
    "fields",
    [
        dict(strategy="backup", semantics="cancel", workers=180, backups=20, steps=15),
        dict(strategy="k-sync", workers=41, k=29),
        dict(strategy="sync", workers=40),
        dict(strategy="backup", semantics="drop", workers=30, backups=9),
        dict(strategy="async", workers=45),
    ],
    ids=lambda f: f["strategy"],
)
def test_many_workers_against_the_reference(fields):
    """Rows wider than those NumPy's partition happens to leave sorted (up to about 50): the fast
    path's order statistic and the engine at 30-200 workers."""
    common = dict(timing_only=True, steps=60, latency="lognormal:mu=0,sigma=0.5", comm_latency=0.25, seed=5)
    config = RunConfig(**{**common, **fields})
    assert applies(dataclasses.replace(config, log_gradients="none"))  # check compares the fast path's counts
    check(config)


@pytest.mark.parametrize("latency", ["constant:value=1", "empirical:" + "{trace}"])
def test_a_tie_at_the_nth_place_follows_the_engines_events(latency, tmp_path):
    """Every draw equal (or drawn from two values): the N-th and (N+1)-th arrivals tie, and which of
    them the PS takes is the order of events, not the lower worker. The fast path's per-gradient
    records must name the contributors the reference names (it hands such a run to the engine)."""
    trace = tmp_path / "two-values.csv"
    trace.write_text("worker,step,duration\n" + "".join(f"0,{s},{1 + s % 2}\n" for s in range(8)))
    config = RunConfig(
        strategy="backup",
        semantics="cancel",
        workers=2,
        backups=1,
        steps=6,
        timing_only=True,
        latency=latency.format(trace=trace),
    )
    assert applies(config)  # check compares the fast path's per-gradient records
    check(config)
