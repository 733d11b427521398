"""Writing a run's results: all files appear together or not at all.

Files go to a hidden temporary folder beside ``DIR`` and are moved into place at the end
(``storage.replace_dir``), so an interrupted or failed run never leaves a half-written ``DIR``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from . import strictjson
from .errors import InputError, named
from .gcpause import gc_paused
from .records import Gradient, Update
from .schema import run_folder_note
from .storage import FolderLock, recover, replace_dir, temporary, write_text  # noqa: F401 (write_text: re-exported)
from .version import __version__


def check_out_dir(out: Path, *, overwrite: bool, inputs=(), replaces: bool = True) -> None:
    """Fail early (before simulating) if ``out`` is not a folder the results may replace.

    Args:
        inputs: the files and folders the command reads (traces, run folders, a checkpoint).
        replaces: the results replace the whole folder (``check_replaceable``); False where a
            command writes into it and keeps other files (``reproduce``).

    Raises:
        InputError: ``out`` is refused by ``check_out_place``, is a file, or already holds
            results and ``overwrite`` is off.
    """
    check_out_place(out, inputs)
    if out.exists() and not out.is_dir():
        raise InputError(f"{named('out')} {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{named('out')} {out}: directory is not empty; pass {named('overwrite')} to replace it")
        if replaces:
            check_replaceable(out)


RESULTS = {
    "summary.json",
    "fit.json",
    "validate.json",
    "compare.json",
    "compare.csv",
    "whatif.json",
    "scale.json",
}  # one marks a results folder


def check_replaceable(out: Path) -> None:
    """``--overwrite`` replaces a whole folder only if it holds earlier results of this tool: plain
    files, one of them a results file (``summary.json``, ``fit.json`` ...), nothing hidden, no
    subfolder. Anything else (a repository, a user's documents) is refused, never deleted."""
    entries = list(out.iterdir())
    foreign = [e for e in entries if e.name.startswith(".") or not e.is_file() or e.is_symlink()]
    if foreign or not RESULTS & {e.name for e in entries}:
        example = f" ({foreign[0].name})" if foreign else ""
        raise InputError(
            f"{named('out')} {out}: holds files that are not stragglersim "
            f"results{example}; {named('overwrite')} replaces only a "
            "folder of earlier results: give a new folder"
        )


def check_out_place(out: Path, inputs=()) -> None:
    """Refuse an output folder that must never be replaced: the current folder or one above it
    (the repository root of a checkout among them), a folder holding this package, and the folder
    of an input (or one above it). ``--out ""`` is the current folder."""
    where = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise InputError(
            f"{named('out')} {out}: is the current folder or one above it; give a new folder for the results"
        )
    package = Path(__file__).resolve().parents[1]
    if where == package or where in package.parents:
        raise InputError(
            f"{named('out')} {out}: holds the stragglersim package itself; give a new folder for the results"
        )
    for path in inputs:
        read = Path(path).resolve()
        if where == read or where in read.parents:
            raise InputError(f"{named('out')} {out}: holds the input {path}; give a new folder for the results")


def check_not_in_sweep(out: Path) -> None:
    """Refuse a run written inside a sweep folder (one that records its grid, ``grid.toml``): the
    sweep's tables, ``aggregate``, ``compare`` and ``plot`` would count it as one of the sweep's runs."""
    for folder in Path(os.path.abspath(out)).parents:
        if (folder / "grid.toml").is_file() and (folder / "runs").is_dir():
            raise InputError(
                f"{named('out')} {out}: inside the sweep folder {folder}, whose runs are its grid's only; "
                "give a folder outside it"
            )


@contextmanager
def staged_dir(out: Path, *, overwrite: bool = False, inputs=()):
    """Yield a hidden folder beside ``out`` to write into; move it to ``out`` on success,
    delete it on failure. The process is the only writer of ``out`` meanwhile (``FolderLock``);
    ``out`` is checked by ``check_out_dir`` first and again right before the move."""
    check_out_place(out, inputs)
    with FolderLock(out):
        recover(out)  # a replacement a killed process left half-done; its temporaries
        check_out_dir(out, overwrite=overwrite, inputs=inputs)
        tmp = temporary(out)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            check_out_dir(out, overwrite=overwrite, inputs=inputs)
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def write_run(out: Path, config, log, summary: dict, *, tables: dict | None = None, overwrite: bool = False) -> None:
    """Write ``summary.json``, ``config.toml``, ``updates.csv`` and ``gradients.csv`` to ``out``,
    plus any extra ``tables`` given as ``{file name: (header, lines)}``, and ``columns.md``: what
    each CSV column holds, in which unit (``schema.py``)."""
    with staged_dir(out, overwrite=overwrite) as tmp:
        write_json(tmp / "summary.json", {**summary, "version": __version__})
        config.save(tmp / "config.toml", comment=f"stragglersim {__version__}: the resolved configuration of this run")
        _write_csv(tmp / "updates.csv", Update.FIELDS, log.update_lines())
        if config.log_gradients == "all":
            _write_csv(tmp / "gradients.csv", Gradient.FIELDS, log.gradient_lines())
        for name, (header, lines) in (tables or {}).items():
            _write_csv(tmp / name, header, lines)
        (tmp / "columns.md").write_text(run_folder_note([p.name for p in tmp.iterdir()]))


def write_json(path: Path, data) -> None:
    """Strict JSON: non-finite numbers as null, listed under ``non_finite`` (``strictjson``)."""
    path.write_text(strictjson.dumps(data, indent=2) + "\n")


def check_out_file(out: Path, *, overwrite: bool, inputs=()) -> None:
    """Fail early if the output file ``out`` exists and ``overwrite`` is off, or would replace an
    input: one of the ``inputs`` files, or a file inside one of the ``inputs`` folders."""
    if out.is_dir():
        raise InputError(f"{named('out')} {out}: is a directory; give a file name")
    if out.exists() and not overwrite:
        raise InputError(f"{named('out')} {out}: exists; pass {named('overwrite')} to replace it")
    where = out.resolve()
    for path in inputs:
        read = Path(path).resolve()
        if where == read or (out.exists() and read in where.parents):
            raise InputError(f"{named('out')} {out}: would replace the input {path}; give another file name")


def _write_csv(path: Path, header: tuple[str, ...], lines) -> None:
    """A CSV from preformatted lines (one f-string per record is several times faster than
    the csv module at a million rows; records hold only numbers and fixed words)."""
    with open(path, "w") as f, gc_paused():
        f.write(",".join(header) + "\n")
        f.writelines(strictjson.finite_lines(lines))


def read_csv(path: Path) -> list[dict]:
    """A result table as dictionaries of strings, one per row."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_workers(rows: list[dict], key: str) -> dict[int, list[float]]:
    """The values of column ``key`` of result rows (NaN where empty), grouped by ``workers``, sorted."""
    out: dict[int, list[float]] = {}
    for r in rows:
        value = r[key]
        out.setdefault(int(r["workers"]), []).append(float(value) if value not in ("", None) else float("nan"))
    return dict(sorted(out.items()))


def write_results(summaries: list[dict], path: Path) -> None:
    """One row per run, the summary fields as columns (atomically)."""
    columns: list[str] = []
    for s in summaries:
        columns += [k for k in s if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow({k: ("" if v is None else strictjson.finite_cell(v)) for k, v in s.items()})
    write_text(path, buffer.getvalue())
