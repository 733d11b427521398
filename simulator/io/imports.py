"""The user's own model, dataset and optimizer, named by import path (``package.module:factory``).

A run's ``model``, ``dataset`` and ``optimizer`` are each a built-in name, an import path, or (from
the Python API) the token of an object registered in this process (``python-object:NAME``), which
only this process can run. An import path is imported here, its module found on ``sys.path`` and,
as ``python -m`` does, in the working directory. The file that defines the object is hashed
(SHA-256), and the run's configuration records the hashes (``sources``), so a resumed run can tell
that the code it would continue with is not the code it started with.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

from .errors import InputError, named

COMPONENTS = ("model", "dataset", "optimizer")  # the fields that take an import path
PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
OBJECT = "python-object:"  # the prefix of an in-process object's token (a hyphen: never a module's name)
# An object's token names this process and the object's place among those registered here, so a
# folder that another process filled never counts its runs as this object's.
OBJECTS: dict[str, object] = {}  # token -> object given to the Python API, in this process


def is_import_path(value) -> bool:
    """Whether ``value`` names an object by import path (``package.module:attribute``)."""
    return isinstance(value, str) and PATH.match(value.strip()) is not None


def is_object(value) -> bool:
    """Whether ``value`` is the token of an object registered in this process by :func:`option_value`."""
    return isinstance(value, str) and value.startswith(OBJECT)


def is_user(value) -> bool:
    """Whether ``value`` is the user's own (an import path or an object's token), not a built-in name."""
    return is_import_path(value) or is_object(value)


def check_syntax(field: str, value: str, builtins: tuple[str, ...]) -> None:
    """Refuse a value that is neither one of ``builtins`` nor an import path nor an object's token.

    Raises:
        InputError: naming the field, the value and the forms it may take.
    """
    if value in builtins or is_user(value):
        return
    hint = " (an import path has one ':', between the module and the name)" if ":" in str(value) else ""
    raise InputError(
        f"{named(field)}: unknown {field} {value!r}: give one of {', '.join(builtins)} "
        f"or an import path package.module:factory{hint}"
    )


def option_value(value, field: str) -> str:
    """What the configuration records for ``value`` given to the Python API as ``field``: a string
    as it is; an object its import path where importing that gives the very object back; else the
    token of the object, registered in this process (``python-object:NAME``)."""
    if isinstance(value, str):
        return value
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if module and name and module != "__main__" and "<" not in name:
        try:
            if _attribute(importlib.import_module(module), name) is value:
                return f"{module}:{name}"
        except (ImportError, AttributeError):
            pass
    for token, known in OBJECTS.items():
        if known is value:
            return token
    label = getattr(value, "__name__", None) or getattr(value, "name", None) or type(value).__name__
    label = re.sub(r"\W+", "_", str(label)).strip("_")
    token = f"{OBJECT}{label}@{os.getpid()}.{len(OBJECTS) + 1}"  # this process's: never another's object
    OBJECTS[token] = value
    return token


def resolve(field: str, value: str):
    """The object that ``value`` (an import path or an object's token) names.

    Raises:
        InputError: the module cannot be imported (or raises), the name is not in it, or the token
            is not registered in this process (a run saved by another process).
    """
    if is_object(value):
        if value not in OBJECTS:
            raise InputError(
                f"{named(field)} {value}: an object given to the Python API in another process, which this one "
                f"cannot rebuild; name it by import path (package.module:factory) to run it from a file"
            )
        return OBJECTS[value]
    module_name, _, attribute = value.strip().partition(":")
    module = import_module(field, value, module_name)
    try:
        return _attribute(module, attribute)
    except AttributeError:
        raise InputError(f"{named(field)} {value}: module {module_name} has no {attribute!r}") from None


def import_module(field: str, value: str, module_name: str):
    """``module_name`` imported, the working directory on the path after ``sys.path`` (as ``python -m``
    would find it); any error the import raises becomes one line."""
    try:
        return _import(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise InputError(f"{named(field)} {value}: importing {module_name} failed: {one_line(err)}") from None
        raise InputError(
            f"{named(field)} {value}: no module named {err.name!r} on the path or in the working directory "
            f"{os.getcwd()}"
        ) from None
    except Exception as err:  # noqa: BLE001 (the user's module may raise anything: one line says what)
        raise InputError(f"{named(field)} {value}: importing {module_name} raised {one_line(err)}") from None


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        here = os.getcwd()
        if err.name is None or not module_name.startswith(err.name) or here in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def _attribute(module, dotted: str):
    value = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def source_file(field: str, value: str) -> Path | None:
    """The file that defines what ``value`` names (its module's file where the object has none of
    its own), or None (an object's token, or a module without a file)."""
    if not is_import_path(value):
        return None
    obj = resolve(field, value)
    try:
        file = inspect.getsourcefile(obj)
    except TypeError:  # an instance, not a function or class: its module's file
        file = None
    if file is None:
        module = sys.modules.get(value.partition(":")[0])
        file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def source_hash(field: str, value: str) -> str:
    """``sha256:HEX`` of the file that defines what ``value`` names ("" if it has none)."""
    file = source_file(field, value)
    if file is None:
        return ""
    try:
        return "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as err:
        raise InputError(f"{named(field)} {value}: cannot read its source file {file}: {err.strerror}") from None


def sources_of(config, fields: tuple[str, ...] = COMPONENTS) -> str:
    """The ``sources`` record of ``config``'s import paths among ``fields``: ``FIELD=sha256:HEX``, joined by ``;``."""
    parts = []
    for field in fields:
        value = getattr(config, field)
        if is_import_path(value):
            digest = source_hash(field, value)
            if digest:
                parts.append(f"{field}={digest}")
    return ";".join(parts)


def check_sources(config, recorded: str, current: str, where: str, fields: tuple[str, ...] = COMPONENTS) -> None:
    """Refuse to continue ``where`` (a checkpoint, a run folder) with source files other than those
    ``recorded`` there; ``current`` is the record of the files now (:func:`sources_of`, over ``fields``).

    Raises:
        InputError: naming the file that changed, its recorded hash and its hash now.
    """
    before, now = _record(recorded), _record(current)
    for field in fields:
        value = getattr(config, field)
        if field in before and is_import_path(value) and now.get(field, "") != before[field]:
            raise InputError(
                f"{named(field)} {value}: its source file {source_file(field, value)} has changed since {where} "
                f"({before[field][:19]}..., now {now.get(field, '')[:19]}...); restore the file, or start afresh "
                f"(another folder, or {named('overwrite')})"
            )


def _record(sources: str) -> dict[str, str]:
    """A ``sources`` record as field -> ``sha256:HEX``."""
    return dict(part.split("=", 1) for part in sources.split(";") if "=" in part)


def check_sendable(config, how: str) -> None:
    """Refuse to send a run that holds an in-process object to other processes (``how``).

    Raises:
        InputError: naming the field and the fix (an import path, or one job).
    """
    for field in COMPONENTS:
        value = getattr(config, field)
        if is_object(value):
            raise InputError(
                f"{named(field)} {value}: an object given in Python cannot be sent to {how}; define it in a module "
                f"and give its import path (package.module:factory), or run in this process ({named('jobs')} 1)"
            )
