"""RunConfig: one place that validates, and a TOML round trip."""

import math

import pytest

from simulator.config import RunConfig
from simulator.errors import InputError


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
        ({"timing_only": False}, "pass --timing-only"),
    ],
)
def test_validate_names_the_field(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("+", r"\+")):
        RunConfig(**kwargs).validate()


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
    with pytest.raises(InputError, match="not valid TOML"):
        RunConfig.load(tmp_path / "bad.toml")
    (tmp_path / "extra.toml").write_text("workerz = 3\n")
    with pytest.raises(InputError, match="unknown field 'workerz'"):
        RunConfig.load(tmp_path / "extra.toml")
