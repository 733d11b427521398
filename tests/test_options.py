"""The command line is generated from the option declarations: every RunConfig field, its default."""

from dataclasses import fields

import pytest
from stragglersim.cli.main import build_parser
from stragglersim.cli.options import OPTIONS, TRACE_FIELDS, config_from_namespace
from stragglersim.core.config import RunConfig


def test_every_run_option_is_declared_once():
    declared = [o.field for o in OPTIONS] + list(TRACE_FIELDS)
    assert sorted(declared) == sorted(f.name for f in fields(RunConfig))
    assert len(set(declared)) == len(declared)


def test_the_generated_options_default_to_runconfig_defaults(tmp_path):
    args = build_parser().parse_args(["simulate", "--out", str(tmp_path)])
    assert config_from_namespace(args) == RunConfig().validate()


def test_flags_reach_the_fields_with_their_types(tmp_path):
    argv = ["simulate", "--out", str(tmp_path), "--strategy", "k-sync", "--k", "3", "--workers", "5"]
    argv += ["--deadline", "2.5", "--no-stop-at-target", "--timing-only", "--format", "pai", "--time-scale", "2"]
    args = build_parser().parse_args(argv)
    assert (args.strategy, args.k, args.workers, args.deadline) == ("k-sync", 3, 5, 2.5)
    assert (args.stop_at_target, args.timing_only, args.trace_format, args.time_scale) == (False, True, "pai", 2.0)


def test_a_config_file_sets_the_defaults_and_flags_win(tmp_path):
    args = build_parser({"workers": 7, "latency": "constant:value=2"}).parse_args(
        ["simulate", "--out", str(tmp_path), "--workers", "9"]
    )
    assert (args.workers, args.latency) == (9, "constant:value=2")


def test_the_optimizer_names_config_accepts_are_the_ones_optim_builds():
    from stragglersim.core import config
    from stragglersim.training import optim

    assert tuple(optim.OPTIMIZERS) == config.OPTIMIZERS
    for name in config.OPTIMIZERS:
        assert optim.make_optimizer(RunConfig(optimizer=name), 4) is not None
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs' \(choose from sgd, momentum"):
        optim.make_optimizer(RunConfig(optimizer="lbfgs"), 4)  # never a silent default


def test_exponential_schedule_decays_in_steps_after_scaling():
    from stragglersim.training.optim import learning_rate

    config = RunConfig(lr=0.1, lr_scaling="linear", lr_schedule="exponential", lr_decay_rate=0.5, lr_decay_steps=10)
    schedule = learning_rate(config, 4)
    assert [float(schedule(t)) for t in (0, 9, 10, 25)] == pytest.approx([0.4, 0.4, 0.2, 0.1])


def test_counted_rmsprop_scales_each_update_with_the_gradients_it_averaged():
    """deadline with --lr-scaling linear: the first rmsprop step (decay 0.9, eps 1.0) is
    -lr * n * g / sqrt(0.1 g^2 + 1) for an update averaging n gradients."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from stragglersim.training.optim import make_optimizer

    opt = make_optimizer(
        RunConfig(optimizer="rmsprop", lr=0.01, lr_scaling="linear", strategy="deadline"), 4, counted=True
    )
    g = np.array([1.0, -2.0, 0.5], np.float32)

    @jax.jit  # one compilation, not one per optax operation
    def first_steps(grads, params):
        state = opt.init(params)
        return [opt.update(grads, state, params, gradients=n)[0]["w"] for n in (2, 4)]

    two, four = first_steps({"w": jnp.asarray(g)}, {"w": jnp.zeros(3)})
    np.testing.assert_allclose(two, -0.01 * 2 * g / np.sqrt(0.1 * g**2 + 1), rtol=1e-5)
    np.testing.assert_allclose(four, 2 * np.asarray(two), rtol=1e-6)


def test_config_file_given_as_config_equals_file_and_twice(tmp_path, capsys):
    from stragglersim.cli.main import main

    config = tmp_path / "run.toml"
    config.write_text('strategy = "async"\nworkers = 3\nsteps = 30\ntiming_only = true\n')
    assert main(["simulate", f"--config={config}", "--quiet", "--out", str(tmp_path / "a")]) == 0
    assert '"strategy": "async"' in (tmp_path / "a" / "summary.json").read_text()
    assert main(["simulate", "--config", str(config), "--config", str(config), "--out", str(tmp_path / "b")]) == 2
    assert "--config given 2 times" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
