"""Checkpoints of training runs, and resuming them to exactly the same result.

The engine needs no saved state: timing never depends on gradients and every random stream is
a pure function of the seed, so a resumed run re-simulates the updates already applied (cheap)
and restores the trainer's state from the checkpoint: parameters, optimizer state, the ring of
past versions, the losses and metrics so far and the evaluation clock. Checkpoints are taken
right after an evaluation, where no update is deferred, so the resumed run fuses its updates
exactly as the uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np

from . import storage
from .config import RunConfig
from .errors import InputError


def save(directory: Path, config: RunConfig, trainer: dict, result, state: dict) -> None:
    """Write the checkpoint atomically (a temporary folder put in place by ``storage.replace_dir``).

    Args:
        trainer: the trainer's :meth:`~stragglersim.trainer.Trainer.state`.
        result: the training result so far (its metrics).
        state: the training loop's own state (JSON).
    """
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays = {f"params_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(trainer["params"]))}
    arrays |= {f"opt_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(trainer["opt_state"]))}
    ring = trainer["ring"]
    if ring is not None:
        arrays |= {f"ring_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(ring.buffers))}
    losses = jax.device_get(trainer["losses"])
    arrays["losses"] = np.concatenate(losses) if losses else np.zeros(0, np.float32)
    np.savez(tmp / "state.npz", **arrays)
    meta = {
        **state,
        "version": trainer["version"],
        "eval_mark": int(sum(len(x) for x in losses[: trainer["eval_mark"]])),
        "metrics": result.metrics,
        "ring": None if ring is None else [ring.capacity, ring.oldest, ring.newest],
    }
    (tmp / "state.json").write_text(json.dumps(meta))
    config.save(tmp / "config.toml")
    storage.replace_dir(tmp, directory)


FILES = ("state.npz", "state.json", "config.toml")  # in the order save writes them


def complete(directory: Path) -> bool:
    """Whether a checkpoint folder holds every file (the last one written, config.toml, not empty)."""
    return (
        all((Path(directory) / name).is_file() for name in FILES) and (Path(directory) / FILES[-1]).stat().st_size > 0
    )


def recover(directory: Path) -> None:
    """Finish a checkpoint replacement a killed run left half-done (``storage.recover``)."""
    storage.recover(Path(directory), complete=complete)


def load_config(directory: Path) -> RunConfig:
    recover(directory)
    if not (Path(directory) / "state.json").exists():
        raise InputError(f"--resume {directory}: not a checkpoint folder (no state.json)")
    return RunConfig.load(Path(directory) / "config.toml")


def resume_config(directory: Path, given: dict) -> RunConfig:
    """The configuration a resumed run continues with: the checkpoint's, with ``--steps`` if given
    (more updates extend the run; fewer end it sooner, but not before the checkpoint's update).

    Args:
        given: the run options given beside ``--resume`` (``options.given_options``).

    Raises:
        InputError: another option given with a value other than the checkpoint's, or ``--config``.
    """
    from dataclasses import replace

    from .options import flag_of

    config = load_config(directory)
    if "config" in given:
        raise InputError(f"--config {given['config']}: not with --resume (the checkpoint holds the configuration)")
    for name, value in given.items():
        if name != "steps" and value != getattr(config, name):
            shown = flag_of(name) if value is True else f"--no-{name.replace('_', '-')}" if value is False else None
            raise InputError(
                f"{shown or f'{flag_of(name)} {value}'}: not with --resume (the checkpoint's run has "
                f"{name} = {getattr(config, name)!r}; only --steps may change)"
            )
    steps = given.get("steps", config.steps)
    if steps == config.steps:
        return config
    done = json.loads((Path(directory) / "state.json").read_text())["consumed"]
    if steps is not None and steps < done:
        raise InputError(f"--steps {steps}: the checkpoint is at update {done}; give at least that")
    mode, every = config.eval_schedule  # "auto" follows --steps: keep the schedule the run was saved under
    eval_every = config.eval_every if config.eval_every.strip() != "auto" else str(int(every))
    return replace(config, steps=steps, eval_every=eval_every)


def restore(directory: Path, trainer: dict, result) -> tuple[dict, dict]:
    """Read the checkpoint into a trainer state shaped like ``trainer`` (its current
    :meth:`~stragglersim.trainer.Trainer.state`; the ring is filled in place) and into
    ``result``; return (the trainer's state, the loop's state)."""
    directory = Path(directory)
    meta = json.loads((directory / "state.json").read_text())
    with np.load(directory / "state.npz") as arrays:

        def fill(tree, prefix):
            leaves, treedef = jax.tree_util.tree_flatten(tree)
            return jax.tree_util.tree_unflatten(
                treedef, [jax.numpy.asarray(arrays[f"{prefix}_{i}"]) for i in range(len(leaves))]
            )

        params = fill(trainer["params"], "params")
        opt_state = fill(trainer["opt_state"], "opt")
        ring = trainer["ring"]
        if meta["ring"] is not None:
            capacity, ring.oldest, ring.newest = meta["ring"]
            while ring.capacity < capacity:
                ring.reserve(ring.oldest + ring.capacity)
            ring.buffers = fill(ring.buffers, "ring")
        losses = arrays["losses"]
    if meta["eval_mark"] and meta["eval_mark"] != len(losses):
        raise InputError(f"--resume {directory}: inconsistent checkpoint (losses after the last evaluation)")
    state = {
        "params": params,
        "opt_state": opt_state,
        "ring": ring,
        "losses": [jax.numpy.asarray(losses)] if len(losses) else [],
        "eval_mark": 1 if meta["eval_mark"] else 0,
        "version": meta["version"],
    }
    result.metrics[:] = [tuple(row) for row in meta["metrics"]]
    return state, meta
