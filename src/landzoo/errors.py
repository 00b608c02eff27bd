"""The project's error base class: the CLI turns any of these into one line on stderr and exit code 2."""


class LandzooError(Exception):
    """A user-facing error: bad input, bad option, damaged file. Its message is the whole story."""
