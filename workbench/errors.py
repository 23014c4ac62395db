"""Exceptions shared by the library, the CLI and the pages."""


class InputError(ValueError):
    """A user-supplied file, expression or parameter is invalid.

    The message is one line, written for the user: the CLI prints it and exits with code 2, the
    pages show it in place. Nothing is computed or stored after an ``InputError``.
    """


def name_once(filename: str, message: str) -> str:
    """``message`` about ``filename`` naming the file exactly once at its head.

    Readers usually name the file themselves ("bad.h5 is not an HDF5 file"); the pages and the
    CLI add the name only when it is missing, and a name repeated by two layers
    ("bad.h5: bad.h5: …") is said once.
    """
    msg = " ".join(str(message).split())
    if not filename:
        return msg
    prefix = f"{filename}: "
    while msg.startswith(prefix) and filename in msg[len(prefix) :]:
        msg = msg[len(prefix) :]
    return msg if filename in msg else f"{prefix}{msg}"


def without_name(filename: str, message: str) -> str:
    """``message`` with a leading ``filename`` taken off, for a table that has a file column."""
    msg = name_once(filename, message)
    for head in (f"{filename}: ", f"{filename} "):
        if filename and msg.startswith(head):
            return msg[len(head) :]
    return msg
