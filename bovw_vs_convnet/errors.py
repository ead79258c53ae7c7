"""Exceptions that mean "bad input": the CLI turns them into one line and exit code 2."""


class BvcError(Exception):
    """Base class for every error caused by the user's input (data, flags, files).

    The command line prints ``str(error)`` on one line and exits with code 2;
    anything else that escapes is an unexpected failure (exit code 1).
    """


class ConfigError(BvcError):
    """An unknown setting, a value of the wrong type, an unknown preset."""


class DataError(BvcError):
    """A missing dataset, a corrupt image, a checksum mismatch, a split that cannot be made."""
