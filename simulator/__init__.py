"""stragglersim: discrete-event simulation of distributed SGD with stragglers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stragglersim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
