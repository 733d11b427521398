"""RunConfig: one place that validates, and a TOML round trip."""

import math
import re

import pytest
from conftest import raises_as_cli
from stragglersim.core.assemble import check
from stragglersim.core.config import RunConfig


def test_backup_defaults_to_tf_semantics_and_others_have_none():
    assert RunConfig(strategy="backup").semantics == "tf"
    assert RunConfig(strategy="sync").semantics is None
    assert RunConfig(strategy="async").semantics is None
    assert RunConfig(strategy="backup", workers=4, backups=2).total_workers == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "gossip"}, "unknown strategy 'gossip'"),
        ({"workers": 0}, "--workers must be an integer >= 1, got 0"),
        ({"backups": -1}, "--backups must be an integer >= 0, got -1"),
        ({"steps": 0}, "--steps must be an integer >= 1, got 0"),
        ({"seed": -3}, "--seed must be an integer >= 0"),
        ({"semantics": "lazy"}, "unknown semantics 'lazy'"),
        ({"strategy": "sync", "backups": 2}, "use --strategy backup for B > 0"),
        ({"strategy": "sync", "semantics": "tf"}, "--semantics applies to --strategy backup only"),
        ({"strategy": "async", "backups": 1}, "async has no backup workers"),
        ({"strategy": "backup", "staleness_cutoff": 2}, "--staleness-cutoff applies to --strategy async only"),
        ({"strategy": "async", "staleness_cutoff": -1}, "--staleness-cutoff must be an integer >= 0"),
        ({"comm_latency": -0.1}, "--comm-latency must be a finite number >= 0"),
        ({"bandwidth": 0.0}, "--bandwidth must be > 0"),
        ({"param_bytes": math.nan}, "--param-bytes must be a finite number >= 0"),
        ({"latency": "exponential:rate=-2"}, "'rate' must be > 0"),
        ({"speed_factors": "1,2"}, "2 factors given but the run has 16 workers"),
        ({"model": "resnet"}, "unknown model 'resnet'"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"batch_size": 0}, "--batch-size must be an integer >= 1"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"lr": 0.0}, "--lr must be a finite number > 0"),
        ({"momentum": 1.0}, "--momentum must be in [0, 1)"),
        ({"lr_schedule": "cosine"}, "--lr-schedule: unknown 'cosine'"),
        ({"lr_decay_rate": 1.5}, "--lr-decay-rate must be in (0, 1]"),
        ({"lr_scaling": "cubic"}, "--lr-scaling: unknown 'cubic'"),
        ({"eval_every": "often"}, "--eval-every 'often'"),
        ({"eval_every": "0"}, "--eval-every '0'"),
        ({"eval_every": "-2s"}, "--eval-every '-2s'"),
        ({"target_accuracy": 90.0}, "--target-accuracy is a fraction in (0, 1], got 90.0"),
        ({"target_loss": -1.0}, "--target-loss must be a finite number > 0"),
        ({"data_partition": "random"}, "--data-partition: unknown 'random'"),
        ({"hidden": "128,x"}, "--hidden '128,x'"),
        ({"hidden": "64,0"}, "--hidden '64,0': expected at least one width >= 1"),
        ({"hidden": " , "}, "--hidden ' , ': expected at least one width >= 1"),
        ({"checkpoint_every": "often"}, "--checkpoint-every 'often': must be a finite number > 0 of updates"),
    ],
)
def test_validate_names_the_field(kwargs, message):
    with raises_as_cli(re.escape(message)):
        check(RunConfig(**kwargs))


def test_eval_schedule():
    assert RunConfig(steps=1000).eval_schedule == ("updates", 50)
    assert RunConfig(steps=7).eval_schedule == ("updates", 1)
    assert RunConfig(eval_every="25").eval_schedule == ("updates", 25)
    assert RunConfig(eval_every="2.5s").eval_schedule == ("seconds", 2.5)
    assert RunConfig(hidden="64, 32").hidden_sizes == (64, 32)


def test_toml_round_trip(tmp_path):
    config = RunConfig(
        strategy="async",
        workers=7,
        staleness_cutoff=3,
        latency="lognormal:mu=0,sigma=0.5",
        speed_factors="1,2,1,1,1,1,3",
        comm_latency=0.01,
        steps=10,
        seed=9,
    )
    config.save(tmp_path / "config.toml")
    assert RunConfig.load(tmp_path / "config.toml") == config
    infinite = RunConfig()
    infinite.save(tmp_path / "inf.toml")
    assert RunConfig.load(tmp_path / "inf.toml").bandwidth == math.inf


def test_loading_bad_toml_is_a_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("workers = [1,\n")
    with raises_as_cli("not valid TOML"):
        RunConfig.load(tmp_path / "bad.toml")
    (tmp_path / "latin1.toml").write_bytes('latency = "caf\xe9"\n'.encode("latin-1"))
    with raises_as_cli(r"latin1.toml: cannot read: 'utf-8' codec can't decode"):
        RunConfig.load(tmp_path / "latin1.toml")
    (tmp_path / "extra.toml").write_text("workerz = 3\n")
    with raises_as_cli("unknown field 'workerz'"):
        RunConfig.load(tmp_path / "extra.toml")
