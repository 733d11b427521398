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
    "DataShape",
    "Dataset",
    "InputError",
    "Model",
    "from_equinox",
    "from_flax",
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

_INTERFACE = {"Model": "interface", "Dataset": "interface", "DataShape": "interface", "adapters": None}
_INTERFACE |= {"from_flax": "adapters", "from_equinox": "adapters"}


def __getattr__(name: str):
    """``Model``, ``Dataset``, ``DataShape`` (``models.interface``), ``from_flax`` and ``from_equinox``
    (``models.adapters``), imported when first used: ``import stragglersim`` loads no NumPy."""
    if name not in _INTERFACE:
        raise AttributeError(f"module 'stragglersim' has no attribute {name!r}")
    import importlib  # here, not at import: only for the names above

    module = importlib.import_module(f".models.{_INTERFACE[name] or name}", __name__)
    return module if _INTERFACE[name] is None else getattr(module, name)
