"""stragglersim: discrete-event simulation of distributed SGD with stragglers.

The Python API (see the README's "Python API")::

    import stragglersim

    run = stragglersim.simulate(strategy="backup", workers=8, backups=2, steps=200, timing_only=True)
    run.summary, run.updates  # summary.json as a dict, updates.csv as a pandas DataFrame
"""

from . import sweep as _sweep_module  # noqa: F401
from ._version import __version__
from .api import Run, load_run, predict, simulate, sweep

# The submodule stragglersim.sweep is imported above, before the function sweep is bound: Python
# sets a package's attribute to a submodule when it first loads it, so a later first import of
# stragglersim.sweep would replace the function stragglersim.sweep with the module. (Hence
# `import stragglersim.sweep as m` gives the function; `from stragglersim.sweep import grid` works.)

__all__ = ["Run", "__version__", "load_run", "predict", "simulate", "sweep"]
