"""The strategy registry: a strategy written outside the package runs like a built-in one, and
what the registry lists is what the configuration accepts."""

import re
from dataclasses import fields

import pytest
from conftest import raises_as_cli
from stragglersim import strategies
from stragglersim.cli.options import flag_of
from stragglersim.core.config import RunConfig
from stragglersim.core.engine import Simulation
from stragglersim.io.records import DROPPED_LATE
from stragglersim.strategies import Strategy, cancellable, register

# The README's "Write your own strategy" example, as it is written there.


class Majority(Strategy):
    """Average the first floor(P/2) + 1 gradients of each step; cancel the rest; all restart."""

    name = "majority"
    worker = staticmethod(cancellable)

    def __init__(self, workers: int):
        self.n_workers, self.per_update = workers, workers // 2 + 1

    def admit(self, g, ps):
        return None if g.step == ps.version else DROPPED_LATE

    def on_update(self, ps):
        for wk in ps.workers:
            if wk.busy:
                wk.cancel()


@pytest.fixture
def majority():
    register(Majority)
    yield Majority
    strategies.unregister("majority")


BUILT_IN = (
    "sync",
    "backup",
    "async",
    "softsync",
    "k-sync",
    "k-batch-sync",
    "k-async",
    "k-batch-async",
    "ssp",
    "deadline",
    "adaptive-backup",
)
# A right value of each strategy option, and the options each built-in strategy needs.
VALUES = {
    "semantics": "drop",
    "k": 2,
    "softsync_n": 2,
    "ssp_bound": 1,
    "deadline": 1.5,
    "noise_scale": 64.0,
    "adapt_every": 5,
    "staleness_lr": True,
    "staleness_cutoff": 1,
}


def needed(strategy: str) -> dict:
    return {o.field: VALUES[o.field] for o in strategies.option_specs() if o.required and strategy in o.strategies}


def test_a_registered_strategy_runs_with_exact_update_times(majority):
    """Constant latencies: worker w takes s_w seconds, and every update restarts everyone, so
    update u comes at u·(pull + s_(m) + push), with s_(m) the m-th smallest factor, m = 3 of 5."""
    config = RunConfig(
        strategy="majority",
        workers=5,
        latency="constant:value=1",
        speed_factors="4,1,5,2,3",
        comm_latency=0.25,
        steps=4,
        timing_only=True,
    ).validate()
    sim = Simulation(config)
    log = sim.run()
    assert [u.time for u in log.updates] == [3.5, 7.0, 10.5, 14.0]
    assert all(sorted(g.worker for g in u.gradients) == [1, 3, 4] for u in log.updates)
    assert {g.fate for g in log.gradients if g.worker in (0, 2)} == {"cancelled"}
    assert log.summary(config)["gradients_applied"] == 12
    assert sim.strategy.per_update == 3


def test_a_registered_strategy_is_listed_and_checked_like_the_others(majority):
    assert strategies.names() == (*BUILT_IN, "majority")
    assert strategies.get("majority") is Majority
    with raises_as_cli("majority has no backup workers"):
        RunConfig(strategy="majority", backups=1).validate()
    with raises_as_cli(re.escape("--k applies to --strategy k-sync / k-batch-sync / k-async")):
        RunConfig(strategy="majority", k=2).validate()
    with raises_as_cli("--staleness-lr applies to async, softsync"):
        RunConfig(strategy="majority", staleness_lr=True).validate()
    name = strategies.get("majority").run_name(RunConfig(strategy="majority", workers=5))
    assert name == "majority-N5-B0"


def test_a_name_is_registered_once(majority):
    class Impostor(Majority):
        pass

    with pytest.raises(ValueError, match="registered already"):
        register(Impostor)
    register(Majority)  # the same class again is harmless


def test_the_registry_lists_the_built_in_strategies_in_order():
    assert strategies.names() == BUILT_IN
    with raises_as_cli(re.escape(f"(choose from {', '.join(BUILT_IN)})")):
        RunConfig(strategy="gossip").validate()


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_config_accepts_each_listed_strategy_with_the_options_it_owns(strategy):
    RunConfig(strategy=strategy, workers=4, **needed(strategy)).validate()
    for option in strategies.option_specs():
        if option.field in needed(strategy):
            continue
        config = RunConfig(strategy=strategy, workers=4, **needed(strategy), **{option.field: VALUES[option.field]})
        if strategy in option.strategies or not option.exclusive:
            config.validate()
        else:
            with raises_as_cli(re.escape(f"{flag_of(option.field)} applies to")):
                config.validate()


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_config_needs_each_required_option(strategy):
    for field in needed(strategy):
        kwargs = {k: v for k, v in needed(strategy).items() if k != field}
        with raises_as_cli(re.escape(f"--strategy {strategy} needs --{field.replace('_', '-')}")):
            RunConfig(strategy=strategy, workers=4, **kwargs).validate()


def test_option_specs_describe_config_fields_for_the_command_line():
    types = {f.name: f.type for f in fields(RunConfig)}
    specs = strategies.option_specs()
    assert [o.field for o in specs] == list(VALUES)
    for o in specs:
        assert o.type.__name__ in types[o.field] and o.help and o.strategies
        assert set(o.strategies) <= set(strategies.names())
    stale = {o.field: o.strategies for o in specs}["staleness_lr"]
    assert stale == tuple(n for n in strategies.names() if strategies.get(n).stale)
    assert tuple(strategies.sync.BY_SEMANTICS) == strategies.SEMANTICS


@pytest.fixture
def bare():
    """A strategy with the base class's defaults: every worker's gradient per update, no admission rule."""
    from stragglersim.strategies.base import wait_for_update

    class Everyone(Strategy):
        name = "everyone"
        worker = staticmethod(wait_for_update)

    class NoLoop(Strategy):
        name = "no-loop"

    register(Everyone)
    register(NoLoop)
    yield
    strategies.unregister("everyone")
    strategies.unregister("no-loop")


def test_the_base_class_defaults_wait_for_every_worker(bare):
    config = RunConfig(
        strategy="everyone",
        workers=3,
        latency="constant:value=1",
        speed_factors="1,3,2",
        comm_latency=0.0,
        steps=3,
        timing_only=True,
    )
    sim = Simulation(config.validate())
    log = sim.run()
    assert [u.time for u in log.updates] == [3.0, 6.0, 9.0] and sim.strategy.per_update == 3
    with pytest.raises(NotImplementedError, match="NoLoop needs a worker loop, e.g. restart_at_once"):
        Simulation(RunConfig(strategy="no-loop", workers=2, steps=2, timing_only=True).validate()).run()


def test_a_strategy_needs_a_name():
    class Nameless(Strategy):
        pass

    with pytest.raises(ValueError, match="Nameless has no name"):
        register(Nameless)


def test_a_new_strategy_is_one_file_and_one_registration_line(tmp_path, capsys):
    """tests/toy_strategy.py declares every fact of its strategy; registered, the command line takes it,
    the fast path serves it with the engine's update times, the memory estimate and run names know it,
    and nothing else in the package was touched."""
    from stragglersim.cli.main import main
    from stragglersim.core import limits
    from stragglersim.core.recursions import recursion
    from toy_strategy import Majority

    register(Majority)  # the one registration line
    try:
        run = ["simulate", "--strategy", "toy-majority", "--workers", "5", "--timing-only", "--steps", "40", "--quiet"]
        assert main([*run, "--out", str(tmp_path / "engine")]) == 0
        assert main([*run, "--log-gradients", "none", "--out", str(tmp_path / "fast")]) == 0
        engine = (tmp_path / "engine" / "updates.csv").read_text().splitlines()
        fast = (tmp_path / "fast" / "updates.csv").read_text().splitlines()
        assert engine == fast and len(engine) == 41  # the same update times and contributor counts
        config = RunConfig(strategy="toy-majority", workers=5, timing_only=True, steps=40).validate()
        assert recursion(config) == "barrier" and Majority.run_name(config) == "toy-majority-N5-B0"
        wide = RunConfig(strategy="toy-majority", workers=10_000, steps=10).validate()
        assert limits.memory_parts(wide) == limits.memory_parts(RunConfig(strategy="sync", workers=10_000, steps=10))
        assert main(["simulate", "--strategy", "toy-majority", "--backups", "1", "--out", str(tmp_path / "x")]) == 2
        assert "--backups 1: toy-majority has no backup workers" in capsys.readouterr().err
    finally:
        strategies.unregister("toy-majority")


def test_each_strategy_names_its_recursion_and_an_unknown_name_finds_none():
    """k-batch-sync is no order statistic of fresh draws (a worker may deliver two of an update's K): no
    barrier fast path, its own "batch" recursion; backup with drop and B = 0 is a barrier. A name that is
    no strategy (or not even hashable, from a TOML list) finds none, and a configuration with it still says
    its worker count before validation refuses it."""
    batch = RunConfig(strategy="k-batch-sync", workers=4, k=2)
    assert strategies.get("k-batch-sync").fast_path(batch) is None
    assert strategies.get("k-batch-sync").recursion(batch) == "batch"
    assert strategies.get("backup").recursion(RunConfig(semantics="drop", backups=0)) == "barrier"
    assert strategies.get("backup").recursion(RunConfig(semantics="drop", backups=2)) == "drop"
    assert strategies.find(["sync"]) is None and strategies.find("nope") is None
    assert RunConfig(strategy=["sync"], workers=3, backups=2).total_workers == 3
    assert RunConfig(strategy="backup", workers=3, backups=2).total_workers == 5
