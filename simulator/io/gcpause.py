"""Pausing Python's cyclic garbage collector around bulk work on many small records."""

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """Disable the cyclic collector inside the block, restoring its previous state after.

    Event and gradient records hold no reference cycles, so reference counting frees them;
    the cyclic collector would only rescan the growing set of live records again and again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
