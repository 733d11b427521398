"""Writing a run's results: all files appear together or not at all.

Files go to a hidden temporary folder beside ``DIR`` and are moved into place at the end,
so an interrupted or failed run never leaves a half-written ``DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from simulator import __version__
from simulator.errors import InputError
from simulator.gcpause import gc_paused
from simulator.records import Gradient, Update

RESULT_FILES = ("summary.json", "config.toml", "updates.csv", "gradients.csv")


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Fail early (before simulating) if ``out`` cannot receive results.

    Raises:
        InputError: ``out`` is a file, or already holds results and ``overwrite`` is off.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"--out {out}: directory is not empty; pass --overwrite to replace it")


def write_run(out: Path, config, log, summary: dict, *, tables: dict | None = None, overwrite: bool = False) -> None:
    """Write ``summary.json``, ``config.toml``, ``updates.csv`` and ``gradients.csv`` to ``out``,
    plus any extra ``tables`` given as ``{file name: (header, lines)}``."""
    check_out_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "summary.json").write_text(json.dumps({**summary, "version": __version__}, indent=2) + "\n")
        (tmp / "config.toml").write_text(f"# stragglersim {__version__}: the resolved configuration of this run\n")
        with open(tmp / "config.toml", "a") as f:
            import tomli_w

            f.write(tomli_w.dumps(config.to_dict()))
        _write_csv(tmp / "updates.csv", Update.FIELDS, log.update_lines())
        _write_csv(tmp / "gradients.csv", Gradient.FIELDS, log.gradient_lines())
        for name, (header, lines) in (tables or {}).items():
            _write_csv(tmp / name, header, lines)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_csv(path: Path, header: tuple[str, ...], lines) -> None:
    """A CSV from preformatted lines (one f-string per record is several times faster than
    the csv module at a million rows; records hold only numbers and fixed words)."""
    with open(path, "w") as f, gc_paused():
        f.write(",".join(header) + "\n")
        f.writelines(lines)


def _replace_dir(new: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old)
    else:
        new.rename(out)
