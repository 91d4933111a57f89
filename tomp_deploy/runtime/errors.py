"""The one exception type for problems a user can cause and fix."""


class ToMPError(Exception):
    """A user-facing error: the message says what went wrong and what to do about it.

    The CLI prints it without a traceback and exits with code 2.
    """
