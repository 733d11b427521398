"""Shared helpers: build a config, run it, read the log back as plain tuples."""

import contextlib
import os
import pathlib
import re
import tempfile

import pytest

# JAX's persistent compilation cache, shared by the test workers (and the processes they spawn) and
# kept between runs: a function compiled once is loaded, not compiled again. Set before JAX loads.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"stragglersim-jax-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests kill processes on purpose (SIGKILL at random moments), and JAX writes a cache entry in
# place: a process killed mid-write leaves a truncated entry, which JAX then reports on every read
# (and compiles again). Its processes say nothing of it (a test reads their stderr), ...
_TORN_ENTRY = "Error reading persistent compilation cache entry"
os.environ["PYTHONWARNINGS"] = ",".join(
    filter(None, [os.environ.get("PYTHONWARNINGS"), f"ignore:{_TORN_ENTRY}:UserWarning"])
)


def _drop_torn_entries(folder):
    """... and the controller drops such entries before the run, so they are compiled and written anew."""
    import zlib

    try:
        import zstandard
    except ImportError:
        zstandard = None
    for path in pathlib.Path(folder).glob("*-cache"):
        try:
            blob = path.read_bytes()
            zstandard.ZstdDecompressor().decompress(blob) if zstandard else zlib.decompress(blob)
        except Exception:
            path.unlink(missing_ok=True)


if "PYTEST_XDIST_WORKER" not in os.environ:
    _drop_torn_entries(os.environ["JAX_COMPILATION_CACHE_DIR"])

# after the cache settings: they must be in place before JAX loads
from stragglersim.cli.options import worded  # noqa: E402
from stragglersim.core.config import RunConfig  # noqa: E402
from stragglersim.core.engine import simulate  # noqa: E402
from stragglersim.io.errors import InputError  # noqa: E402
from stragglersim.studies.grids import Grid  # noqa: E402


def seeded(summary: dict) -> dict:
    """A summary without its wall-clock keys: what the seed fixes (the same seed, the same dict)."""
    from stragglersim.training.runner import WALL_CLOCK  # here, not at import: conftest loads before JAX's setup

    return {k: v for k, v in summary.items() if k not in WALL_CLOCK}


def fixed_by_seed(path: pathlib.Path):
    """A result file as the seed fixes it: its bytes, but a summary.json without its wall-clock keys
    and a table (results.csv, aggregate.csv ...) without their columns (``wall_seconds_mean`` ...)."""
    from stragglersim.training.runner import WALL_CLOCK  # here, not at import: conftest loads before JAX's setup

    if path.name == "summary.json":
        import json  # here, not at import: only summaries are parsed

        return seeded(json.loads(path.read_text()))
    if path.suffix == ".csv":
        import csv  # here, not at import: only tables are parsed

        rows = list(csv.reader(path.read_text().splitlines()))
        keep = [i for i, name in enumerate(rows[0] if rows else []) if not name.startswith(WALL_CLOCK)]
        return [[row[i] for i in keep if i < len(row)] for row in rows]
    return path.read_bytes()


def same_result_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Whether two result files are the same as far as the seed fixes them (see ``fixed_by_seed``)."""
    return fixed_by_seed(a) == fixed_by_seed(b)


@contextlib.contextmanager
def interrupted_at_checkpoint(monkeypatch, count: int = 2):
    """Within: a ^C right after the ``count``-th checkpoint of a run is written (its save then raises
    KeyboardInterrupt); the real save afterwards."""
    from stragglersim.training import checkpoint  # here, not at import: conftest loads before JAX's setup

    saved, calls = checkpoint.save, []

    def crash(*args, **kwargs):
        saved(*args, **kwargs)
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", crash)
    try:
        yield
    finally:
        monkeypatch.setattr(checkpoint, "save", saved)


@contextlib.contextmanager
def raises_as_cli(match: str):
    """``pytest.raises(InputError, match=...)`` against the message as the command line words it (the
    library names fields; the CLI names their flags, ``--workers``)."""
    with pytest.raises(InputError) as info:
        yield info
    assert re.search(match, worded(info.value)), worded(info.value)


def grid(base: RunConfig, *, strategies, workers, backups, seeds, total_workers=None) -> list[RunConfig]:
    """Every combination over ``base`` (its non-default fields fixed); with ``total_workers`` P, B = P - N."""
    defaults = RunConfig()
    axes = {name: [value] for name, value in base.to_dict().items() if value != getattr(defaults, name)}
    axes.update(strategy=list(strategies), workers=list(workers), backups=list(backups), seed=list(seeds))
    if total_workers is not None:
        del axes["backups"]
    return Grid(axes, [total_workers] if total_workers is not None else []).configs()


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
