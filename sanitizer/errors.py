"""Errors a user can act on.

Every problem that comes from the user's input, flags or config raises
:class:`SanitizerError` with a message that names the problem and the fix. The
CLI prints the message (no traceback) and exits with status 2.
"""


class SanitizerError(Exception):
    """A problem with the user's input, config or environment, with a message saying what to do."""


class ConfigError(SanitizerError):
    """The config (file or flags) is invalid."""


class InputError(SanitizerError):
    """The input data cannot be read or does not fit the config."""


class IntegrityError(SanitizerError):
    """A run could not prove that every record is accounted for; nothing was published."""
