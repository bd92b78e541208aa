"""The one exception type for problems with what a user gave elbits: a file, a flag, a setting.

Library code raises :class:`InputError` (a ``ValueError``) for input that is wrong rather than code
that is broken; the command line prints it as ``elbits <command>: error: <message>`` with exit code 2
and no traceback. Anything else that escapes is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad user input (a corrupt or foreign file, an out-of-range setting): one line says what and
    what was expected."""


class MissingFileError(InputError, FileNotFoundError):
    """A file the user named does not exist: an :class:`InputError` that ``except FileNotFoundError``
    also catches."""
