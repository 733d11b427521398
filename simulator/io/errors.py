"""The one exception type that the command line turns into a clean exit status 2."""


class InputError(ValueError):
    """Bad user input: a malformed SPEC, an impossible number, an unreadable file.

    The message is one line that names the offending field (and file and line where there
    is one) and says what would be right. The CLI prints it without a traceback.
    """


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
        import signal

        return signal.Signals(self.signum).name
