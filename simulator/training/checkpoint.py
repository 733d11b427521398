"""Checkpoints of training runs, and resuming them to exactly the same result.

The engine needs no saved state: timing never depends on gradients and every random stream is
a pure function of the seed, so a resumed run re-simulates the updates already applied (cheap)
and restores the trainer's state from the checkpoint: parameters, optimizer state, the ring of
past versions, the losses and metrics so far and the evaluation clock. Checkpoints are taken
right after an evaluation, where no update is deferred, so the resumed run fuses its updates
exactly as the uninterrupted one does.

A checkpoint is verified before any of it is used: ``state.json`` keeps the SHA-256 of
``config.toml``'s bytes, of ``state.npz``'s bytes and of its own other fields, so an edited or
corrupt file is refused with one line naming it (an :class:`InputError`), and so is an array whose
shape or dtype is not the one the configuration's model has. A checkpoint without these hashes
(written by a stragglersim before them) is refused too, not resumed unverified: checkpoints live
only while their run does, so rerunning is the whole cost.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from ..core.config import RunConfig
from ..io import storage
from ..io.errors import InputError, named
from . import quality

HASHES = "sha256"  # state.json's key for the hashes of config.toml, state.npz and state.json's other fields


def save(directory: Path, config: RunConfig, trainer: dict, result, state: dict) -> None:
    """Write the checkpoint atomically (a temporary folder put in place by ``storage.replace_dir``).

    Args:
        trainer: the trainer's :meth:`~stragglersim.training.trainer.Trainer.state`.
        result: the training result so far (its metrics).
        state: the training loop's own state (JSON).
    """
    directory = Path(directory)
    tmp = storage.temporary(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, config, trainer, result, state)
    except BaseException:  # a full disk: no half-written temporary is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    storage.replace_dir(tmp, directory)


def _write(tmp: Path, config: RunConfig, trainer: dict, result, state: dict) -> None:
    arrays = {f"params_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(trainer["params"]))}
    arrays |= {f"opt_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(trainer["opt_state"]))}
    ring = trainer["ring"]
    if ring is not None:
        arrays |= {f"ring_{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(ring.buffers))}
    losses = jax.device_get(trainer["losses"])
    arrays["losses"] = np.concatenate(losses) if losses else np.zeros(0, np.float32)
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    (tmp / "state.npz").write_bytes(npz.getvalue())  # hashed below from the same bytes
    meta = {
        **state,
        "version": trainer["version"],
        "eval_mark": int(sum(len(x) for x in losses[: trainer["eval_mark"]])),
        "metrics": result.metrics,
        "ring": None if ring is None else [ring.capacity, ring.oldest, ring.newest],
    }
    config.save(tmp / "config.toml")
    meta[HASHES] = {
        "config.toml": _sha256((tmp / "config.toml").read_bytes()),
        "state.npz": _sha256(npz.getvalue()),
        "state.json": _meta_hash(meta),
    }
    (tmp / "state.json").write_text(json.dumps(meta))


FILES = ("state.npz", "config.toml", "state.json")  # in the order save writes them


def complete(directory: Path) -> bool:
    """Whether a checkpoint folder holds every file (the last one written, state.json, not empty)."""
    return (
        all((Path(directory) / name).is_file() for name in FILES) and (Path(directory) / FILES[-1]).stat().st_size > 0
    )


def recover(directory: Path) -> None:
    """Finish a checkpoint replacement a killed run left half-done (``storage.recover``)."""
    storage.recover(Path(directory), complete=complete)


def load_config(directory: Path) -> RunConfig:
    """The checkpoint's configuration, its ``config.toml`` verified against the hash in ``state.json``.

    Raises:
        InputError: no checkpoint there, or one edited, corrupt or of an older stragglersim.
    """
    directory = Path(directory)
    recover(directory)
    hashes = read_state(directory)[1]
    if _sha256(_read(directory, "config.toml")) != hashes["config.toml"]:
        raise InputError(
            f"{named('resume')} {directory}: the checkpoint's "
            f"config.toml does not match the configuration it was saved "
            f"with (edited or corrupt); rerun without {named('resume')}"
        )
    return RunConfig.load(directory / "config.toml")


def resume_config(directory: Path, given: dict) -> RunConfig:
    """The configuration a resumed run continues with: the checkpoint's, with ``--steps`` if given
    (more updates extend the run; fewer end it sooner, but not before the checkpoint's update).

    Args:
        given: the run options given beside ``--resume`` (``options.given_options``).

    Raises:
        InputError: another option given with a value other than the checkpoint's, or ``--config``.
    """
    config = load_config(directory)
    if "config" in given:
        raise InputError(
            f"{named('config')} {given['config']}: not with {named('resume')} (the checkpoint holds the configuration)"
        )
    for name, value in given.items():
        if name != "steps" and value != getattr(config, name):
            shown = named(name, negated=value is False) if isinstance(value, bool) else f"{named(name)} {value}"
            raise InputError(
                f"{shown}: not with {named('resume')} (the checkpoint's run has "
                f"{name} = {getattr(config, name)!r}; only {named('steps')} may change)"
            )
    steps = given.get("steps", config.steps)
    if steps == config.steps:
        return config
    done = read_state(Path(directory))[0]["consumed"]
    if steps is not None and steps < done:
        raise InputError(f"{named('steps')} {steps}: the checkpoint is at update {done}; give at least that")
    mode, every = config.eval_schedule  # "auto" follows --steps: keep the schedule the run was saved under
    eval_every = config.eval_every if config.eval_every.strip() != "auto" else str(int(every))
    return replace(config, steps=steps, eval_every=eval_every)


def restore(directory: Path, trainer: dict, result) -> tuple[dict, dict]:
    """Read the checkpoint into a trainer state shaped like ``trainer`` (its current
    :meth:`~stragglersim.training.trainer.Trainer.state`; the ring is filled in place) and into
    ``result``; return (the trainer's state, the loop's state).

    Raises:
        InputError: a file of the checkpoint is missing, corrupt or edited, or an array's shape or
            dtype is not the one ``trainer`` has (a checkpoint of another model).
    """
    directory = Path(directory)
    meta, hashes = read_state(directory)
    data = _read(directory, "state.npz")
    if _sha256(data) != hashes["state.npz"]:
        raise InputError(f"{named('resume')} {directory}: state.npz is corrupt (hash mismatch)")
    arrays = _arrays(directory, data)
    params = _fill(directory, arrays, trainer["params"], "params")
    opt_state = _fill(directory, arrays, trainer["opt_state"], "opt")
    ring = _restore_ring(directory, arrays, trainer["ring"], meta["ring"])
    losses = arrays.get("losses")
    if losses is None or losses.ndim != 1 or losses.dtype.kind != "f":
        raise InputError(f"{named('resume')} {directory}: state.npz holds no 1-D array of losses")
    if meta["eval_mark"] and meta["eval_mark"] != len(losses):
        raise InputError(
            f"{named('resume')} {directory}: inconsistent checkpoint "
            f"(state.json's eval_mark {meta['eval_mark']} is not "
            f"the {len(losses)} losses of state.npz)"
        )
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


def read_state(directory: Path) -> tuple[dict, dict]:
    """``state.json``'s fields, verified against its own hash, and the hashes it keeps (by file name).

    Raises:
        InputError: no ``state.json``, or one that is not JSON, keeps no hashes (an older
            stragglersim's), does not match its hash or lacks a field.
    """
    text = _read(directory, "state.json", missing="not a checkpoint folder (no state.json)")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{named('resume')} {directory}: state.json is corrupt (not valid JSON: {err})") from None
    hashes = meta.pop(HASHES, None) if isinstance(meta, dict) else None
    if not isinstance(hashes, dict) or not all(isinstance(hashes.get(n), str) for n in FILES):
        raise InputError(
            f"{named('resume')} {directory}: state.json keeps no hashes (a checkpoint of an older stragglersim, or "
            f"edited); rerun without {named('resume')}"
        )
    if _meta_hash(meta) != hashes["state.json"]:
        raise InputError(f"{named('resume')} {directory}: state.json is corrupt (hash mismatch)")
    for name, fits in FIELDS.items():
        if name not in meta or not fits(meta[name]):
            raise InputError(f"{named('resume')} {directory}: state.json is corrupt (bad or missing {name!r})")
    return meta, hashes


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _rows(width: int):
    """Whether a value is a list of lists of ``width`` items each."""
    return lambda x: isinstance(x, list) and all(isinstance(row, list) and len(row) == width for row in x)


_pairs = _rows(2)


FIELDS = {  # state.json's fields: whether a value fits
    "consumed": _count,
    "next_time": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    "quality": _rows(len(quality.FIELDS)),  # one row per update so far, with quality measured
    "reached": lambda x: x is None or _pairs([x]),
    "samples": lambda x: isinstance(x, list) and all(_count(n) for n in x),
    "version": _count,
    "eval_mark": _count,
    "metrics": lambda x: isinstance(x, list) and len(x) > 0 and all(isinstance(row, list) for row in x),
    "ring": lambda x: x is None or (isinstance(x, list) and len(x) == 3 and all(_count(n) for n in x)),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _meta_hash(meta: dict) -> str:
    """The hash of state.json's fields but the hashes (its JSON text, keys sorted: the same after a reload)."""
    return _sha256(json.dumps({k: v for k, v in meta.items() if k != HASHES}, sort_keys=True).encode())


def _read(directory: Path, name: str, *, missing: str = "") -> bytes:
    try:
        return (directory / name).read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"{named('resume')} {directory}: {missing or f'{name} is missing (an incomplete checkpoint)'}"
        ) from None
    except OSError as err:
        raise InputError(f"{named('resume')} {directory}: cannot read {name}: {err.strerror or err}") from None


def _arrays(directory: Path, data: bytes) -> dict[str, np.ndarray]:
    """Every array of ``state.npz`` (its bytes), read at once."""
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{named('resume')} {directory}: state.npz is corrupt ({reason})") from None


def _fill(directory: Path, arrays: dict, tree, prefix: str):
    """``tree`` with its leaves replaced by the arrays ``PREFIX_0``, ``PREFIX_1`` ..., each checked
    to have the leaf's shape and dtype."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    filled = []
    for i, leaf in enumerate(leaves):
        name, saved = f"{prefix}_{i}", arrays.get(f"{prefix}_{i}")
        shape, dtype = tuple(np.shape(leaf)), np.dtype(leaf.dtype)
        if saved is None:
            raise InputError(
                f"{named('resume')} {directory}: state.npz has no array {name} (the model has {len(leaves)})"
            )
        if saved.shape != shape or saved.dtype != dtype:
            raise InputError(
                f"{named('resume')} {directory}: state.npz's {name} is {saved.dtype}{list(saved.shape)}, but the "
                f"configuration's model has {dtype}{list(shape)}"
            )
        filled.append(jax.numpy.asarray(saved))
    if f"{prefix}_{len(leaves)}" in arrays:
        raise InputError(
            f"{named('resume')} {directory}: state.npz has more {prefix} arrays than the model ({len(leaves)})"
        )
    return jax.tree_util.tree_unflatten(treedef, filled)


def _restore_ring(directory: Path, arrays: dict, ring, saved: list | None):
    """``ring`` (the trainer's ring of past versions, or None) holding the saved versions."""
    if (ring is None) != (saved is None):
        kept = "keeps no" if ring is None else "keeps"
        raise InputError(
            f"{named('resume')} {directory}: inconsistent checkpoint (the run {kept} past versions; "
            f"state.json's ring is {saved})"
        )
    if ring is None:
        return None
    capacity, oldest, newest = saved
    first = arrays.get("ring_0")
    doublings = capacity // ring.capacity
    if (
        not oldest <= newest < oldest + capacity
        or first is None
        or first.shape[:1] != (capacity,)
        or capacity % ring.capacity
        or doublings & (doublings - 1)
    ):
        raise InputError(
            f"{named('resume')} {directory}: inconsistent checkpoint "
            f"(state.json's ring [capacity, oldest, newest] = {saved} "
            f"does not fit state.npz's ring_0 of {None if first is None else list(first.shape)})"
        )
    ring.oldest, ring.newest = oldest, newest
    while ring.capacity < capacity:
        ring.reserve(ring.oldest + ring.capacity)
    ring.buffers = _fill(directory, arrays, ring.buffers, "ring")
    return ring
