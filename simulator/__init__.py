"""stragglersim: discrete-event simulation of distributed SGD with stragglers.

The Python API (see the README's "Python API")::

    import stragglersim

    run = stragglersim.simulate(strategy="backup", workers=8, backups=2, steps=200, timing_only=True)
    run.summary, run.updates  # summary.json as a dict, updates.csv as a pandas DataFrame
"""

from .api import Run, aggregate, compare, load_run, predict, simulate, sweep, tune
from .io.errors import InputError
from .io.version import __version__

__all__ = [
    "InputError",
    "Run",
    "__version__",
    "aggregate",
    "compare",
    "load_run",
    "predict",
    "simulate",
    "sweep",
    "tune",
]
