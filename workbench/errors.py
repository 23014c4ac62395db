"""Exceptions shared by the library, the CLI and the pages."""


class InputError(ValueError):
    """A user-supplied file, expression or parameter is invalid.

    The message is one line, written for the user: the CLI prints it and exits with code 2, the
    pages show it in place. Nothing is computed or stored after an ``InputError``.
    """
