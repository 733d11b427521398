"""Files shipped with the package: the measured traces (``traces/``) and the example configurations
and grids (``examples/``), installed as package data so that the README's commands find them after
``pip install .`` from any working folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .boundary import check_input_file, check_nesting
from .errors import InputError

TOML_NESTING = 64  # deepest brackets in a TOML file: tomllib recurses once per level

FOLDERS = {"traces": "shipped_traces", "examples": "shipped_examples"}  # repository folder: package data


def shipped(folder: str, name: str) -> Path:
    """The path of ``folder/name`` as shipped (``name`` may hold subfolders); in a checkout (an
    editable install) the repository's folder itself."""
    root = resources.files("stragglersim") / FOLDERS[folder]
    if not root.is_dir():
        root = Path(__file__).resolve().parents[2] / folder
    return Path(str(root.joinpath(*Path(name).parts)))


def shipped_if_missing(path: Path) -> Path:
    """``traces/NAME`` or ``examples/NAME`` (the README's paths) names the shipped file (or folder) when
    no such file exists here; any other path is the user's, relative to the working folder."""
    path = Path(path)
    if path.exists() or path.is_absolute() or len(path.parts) < 2 or path.parts[0] not in FOLDERS:
        return path
    found = shipped(path.parts[0], Path(*path.parts[1:]).as_posix())
    return found if found.is_file() or found.is_dir() else path


def read_toml(path: Path, *, what: str = "") -> dict:
    """A TOML file (``examples/NAME``: the shipped one when no such file is here); ``what`` prefixes
    the one-line error (``--grid ``).

    Raises:
        InputError: the file is not a regular file, cannot be read, nests deeper than
            ``TOML_NESTING`` or is not valid TOML.
    """
    import tomllib  # here, not at import: core.config imports this module at the command line's start (4 ms)

    found = shipped_if_missing(Path(path))
    check_input_file(found, what)
    try:
        text = found.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{what}{path}: cannot read: {err}") from None
    check_nesting(text, what=f"{what}{path}", limit=TOML_NESTING, opens="[{", closes="]}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{what}{path}: not valid TOML: {err}") from None
