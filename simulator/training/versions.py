"""Past parameter versions, kept on the device for gradients computed at stale parameters.

Version v lives in slot v % capacity of one stacked buffer per parameter leaf, so gathering
the versions a chunk of stale gradients read is one indexing operation inside the jitted step,
and the ring doubles (keeping every slot valid) when more versions are in flight than it holds.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


class VersionRing:
    """Parameter versions ``oldest..newest`` (the ones that can still be read)."""

    def __init__(self, params, capacity: int = 8):
        self.capacity = capacity
        self.buffers = jax.tree_util.tree_map(lambda a: jnp.repeat(a[None], capacity, axis=0), params)
        self.oldest = self.newest = 0

    def __len__(self) -> int:
        return self.newest - self.oldest + 1

    def slot(self, version: int, upto: int | None = None) -> int:
        """The slot of ``version``, which must be kept (or, with ``upto``, about to be written
        by versions up to ``upto``)."""
        if not self.oldest <= version <= (self.newest if upto is None else upto):
            raise RuntimeError(
                f"parameters of version {version} were needed but not kept (kept {self.oldest}..{self.newest})"
            )
        return version % self.capacity

    def slots(self, versions, upto: int | None = None):
        """:meth:`slot` of each of ``versions`` (a NumPy int array)."""
        last = self.newest if upto is None else upto
        if len(versions) and not (self.oldest <= versions.min() and versions.max() <= last):
            self.slot(int(versions[(versions < self.oldest) | (versions > last)][0]), upto)  # raises
        return versions % self.capacity

    def get(self, version: int):
        s = self.slot(version)
        return jax.tree_util.tree_map(lambda b: b[s], self.buffers)

    def reserve(self, newest: int) -> None:
        """Make room for versions up to ``newest`` without losing ``oldest``: doubling by
        concatenation keeps slot v % 2C = v % C or v % C + C, both holding version v."""
        while newest - self.oldest >= self.capacity:
            self.buffers = jax.tree_util.tree_map(lambda b: jnp.concatenate([b, b]), self.buffers)
            self.capacity *= 2

    def wrote(self, newest: int) -> None:
        """Versions up to ``newest`` have been written into their slots."""
        self.newest = newest

    def forget_before(self, oldest: int) -> None:
        """No gradient still to be applied read a version older than ``oldest``."""
        self.oldest = max(self.oldest, min(oldest, self.newest))

    def put(self, version: int, params) -> None:
        self.reserve(version)
        s = version % self.capacity
        self.buffers = _set_slot(self.buffers, params, s)
        self.wrote(version)


@partial(jax.jit, donate_argnums=0)  # in place: the old buffers are never read again
def _set_slot(buffers, params, slot):
    return jax.tree_util.tree_map(lambda b, p: b.at[slot].set(p), buffers, params)
