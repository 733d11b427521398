"""Shared helpers: build a config, run it, read the log back as plain tuples."""

import os
import tempfile

import pytest

# JAX's persistent compilation cache, shared by the test workers (and the processes they spawn) and
# kept between runs: a function compiled once is loaded, not compiled again. Set before JAX loads.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"stragglersim-jax-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
from stragglersim.config import RunConfig
from stragglersim.engine import simulate


def run(**kwargs):
    """Simulate ``RunConfig(**kwargs)``; returns (config, event log)."""
    config = RunConfig(**kwargs)
    return config, simulate(config)


def events(log):
    """The gradient log as (worker, index, version, step, start, end, fate, update) tuples."""
    return [(g.worker, g.index, g.version, g.step, g.start, g.end, g.fate, g.update) for g in log.gradients]


def update_times(log):
    return [u.time for u in log.updates]


@pytest.fixture
def tmp_out(tmp_path):
    return tmp_path / "run"


@pytest.fixture(autouse=True, scope="session")
def _private_dataset_cache(tmp_path_factory):
    """Generated datasets (MNIST-1D) are cached in a folder of the test session's own."""
    import os

    os.environ["STRAGGLERSIM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
