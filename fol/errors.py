"""Exceptions that the CLI reports as one clear line, never as a traceback."""


class FolError(Exception):
    """An error meant for the user: the message names the file/port and the problem."""

    exit_code = 1


class SpectrumError(FolError, ValueError):
    """A spectrum that cannot be analysed (bad axis, too short, all NaN, ...)."""


class FormatError(FolError, ValueError):
    """A file that does not follow the format it claims (recording, library, import)."""


class LibraryError(FolError):
    """A reference library that is missing, unverifiable or incompatible."""


class DeviceError(FolError):
    """An analyzer that is missing, silent, reports an error or sends corrupt data."""


class ConfigError(FolError, ValueError):
    """A bad setting or argument given to the library: a sample spec, a setting out of range,
    options a source does not take. The CLI reports it as a usage error (exit code 2)."""

    exit_code = 2


class UsageError(ConfigError):
    """Bad command-line usage discovered after argument parsing (raised by ``fol.cli`` only)."""
