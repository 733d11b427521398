"""The package's version: the one place it is written (pyproject.toml reads it from here).

A literal, not ``importlib.metadata.version``: that import costs 60 ms of the command line's start.
A leaf module, so that every module can import it without importing the package's front door.
"""

__version__ = "0.1.0"
