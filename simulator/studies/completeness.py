"""When a run folder is complete: every file its configuration writes is there and reads back.

A run is written all at once (``results.staged_dir``), so an incomplete folder means that
something outside the tool cut it short or changed it: a copy that stopped, a disk that
filled, a hand edit. A sweep runs such a run again rather than trusting or crashing on it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields, replace
from pathlib import Path

from ..core.config import RunConfig
from ..io.errors import InputError
from ..io.schema import COLUMNS
from .grids import digest


def expected_tables(config: RunConfig) -> list[str]:
    """The CSV files a run of ``config`` writes (``results.write_run``), in the order it writes them."""
    tables = ["updates.csv"]
    if config.log_gradients == "all":
        tables.append("gradients.csv")
    if not config.timing_only:  # runner.execute: a training run's tables
        tables += ["metrics.csv", "training.csv"]
    return tables


def run_complete(folder: Path, config: RunConfig) -> str | None:
    """None if ``folder`` holds the complete run of ``config``; else why not, in a few words
    (``summary.json is not valid JSON (...)``, ``no gradients.csv``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return "no run folder"
    for name in ("summary.json", "config.toml", *expected_tables(config), "columns.md"):
        if not (folder / name).is_file():
            return f"no {name}"
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as err:
        return f"summary.json is not valid JSON ({err})"
    if not isinstance(summary, dict):
        return "summary.json holds no summary"
    try:
        saved = RunConfig.from_dict(tomllib.loads((folder / "config.toml").read_text()))
    except (OSError, ValueError, TypeError) as err:  # InputError is a ValueError
        return f"config.toml cannot be read ({' '.join(str(err).split())})"
    # the run fills in what the grid leaves open (a training run's param_bytes): compare the rest
    resolved = {f.name: None for f in fields(RunConfig) if getattr(config, f.name) is None}
    if digest(replace(saved, **resolved)) != digest(config):
        return "config.toml is not this run's configuration"
    for name in expected_tables(config):
        reason = _table_problem(folder / name, tuple(COLUMNS[name]))
        if reason:
            return f"{name} {reason}"
    return None


def _table_problem(path: Path, header: tuple[str, ...]) -> str | None:
    try:
        with open(path, "rb") as f:
            first = f.readline().decode("utf-8", "replace").rstrip("\r\n")
            f.seek(0, 2)
            size = f.tell()
            f.seek(size - 1)
            last = f.read(1)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if first != ",".join(header):
        return "has the wrong header"
    if last != b"\n":
        return "is cut short"
    return None


def read_summary(folder: Path) -> dict:
    """A run's ``summary.json``.

    Raises:
        InputError: it is missing or not a JSON object (the message names the file).
    """
    path = Path(folder) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing; the run is incomplete (a sweep runs it again)") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read: {err}; the run is incomplete (a sweep runs it again)") from None
    if not isinstance(summary, dict):
        raise InputError(f"{path}: holds no summary (a JSON object); the run is incomplete (a sweep runs it again)")
    return summary
