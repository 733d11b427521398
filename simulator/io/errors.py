"""The one exception type that the command line turns into a clean exit status 2."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

_MARK = "\x1f"  # around a field's name in a message: the reader's layer words it
_FIELD = re.compile(f"{_MARK}(!?)(\\w+){_MARK}")


def named(name: str, *, negated: bool = False) -> str:
    """A field of the configuration (or a parameter of a command) named in an error message.

    Below the command line a message names fields, never flags: ``str(err)`` words them as the
    field names (the Python API's words), and the CLI words them as its flags
    (:meth:`InputError.worded`). ``negated``: the field given as false (``--no-NAME`` on the
    command line).
    """
    return f"{_MARK}{'!' if negated else ''}{name}{_MARK}"


def _as_field(name: str, negated: bool) -> str:
    return f"{name}=False" if negated else name


class InputError(ValueError):
    """Bad user input: a malformed SPEC, an impossible number, an unreadable file.

    The message is one line that names the offending field (and file and line where there
    is one) and says what would be right. The CLI prints it without a traceback, its fields
    worded as flags; ``str`` words them as field names.
    """

    def worded(self, word: Callable[[str, bool], str] = _as_field) -> str:
        """The message with each field named by ``word(name, negated)``."""
        return _FIELD.sub(lambda m: word(m.group(2), bool(m.group(1))), str(self.args[0]) if self.args else "")

    def __str__(self) -> str:
        return self.worded()


class TraceExhausted(Exception):
    """A worker asked for more computations than its recorded trace holds."""


class RunsFailed(Exception):
    """Some runs of a sweep raised; every other run is complete and kept, and rerunning the
    sweep retries only the failed ones. The CLI prints the message and exits with status 1."""


class Stopped(BaseException):
    """A signal (SIGTERM) asked the command to stop. Raised in the main thread where the signal
    lands, as ^C raises KeyboardInterrupt, so that ``finally`` blocks and staged folders clean up."""

    def __init__(self, signum: int):
        super().__init__(signum)  # args: (signum,), as code that rebuilds an exception from its args expects
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name
