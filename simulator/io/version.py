"""The installed package's version (a leaf module, so that every module can import it without
importing the package's front door)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stragglersim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
