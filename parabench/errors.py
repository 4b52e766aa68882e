"""The one exception type that the CLI turns into a single line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: an unknown family, a depth of 0, a foreign database...

    Raised anywhere in parabench; `parabench.cli` prints it as one line on stderr and
    exits with status 2, so a typo never produces a traceback.
    """
