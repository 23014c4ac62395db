"""Read an uploaded HDF5 file once in a child process before the server reads it.

libhdf5 is C code, and a damaged file can crash it, not only make it raise. One byte flipped in
a 51 KB ISMRMRD file made it abort the whole interpreter with "double free or corruption" while
reading the acquisition table (``tests/core/test_damaged_uploads.py``). In the app that interpreter is
the server. So before any reader opens uploaded bytes with h5py, :func:`h5_preflight` hands
them to a fresh ``python`` that opens the file and reads every attribute and every dataset that
fits the decoded-size limit, under an address-space limit and a timeout. If that child dies by a
signal or an abort, or runs out of time, the file is refused in one line and the server never
touches it. If the child raises an ordinary exception, the readers' own checks (and
:func:`workbench.io.limits.h5_damage`) give the specific message in process.

Nothing comes back from the child but its exit status: no pickle, no arrays. The verdict is
cached by the bytes' SHA-256, so a file that two readers open (sniffing, then reading) is
checked once. Cost: a Python start and an h5py import, about 0.2-0.4 s per distinct upload.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

from workbench.errors import InputError
from workbench.io.limits import decoded_limit

TIMEOUT_S = 120.0

_CHILD = r"""
import io, resource, sys
mem = int(sys.argv[1])
try:
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
except (ValueError, OSError):
    pass
import h5py
limit = int(sys.argv[2])
raw = sys.stdin.buffer.read()

def touch(obj):
    for key in obj.attrs:
        obj.attrs[key]
    if isinstance(obj, h5py.Dataset) and obj.size * obj.dtype.itemsize <= limit:
        obj[()]

with h5py.File(io.BytesIO(raw), "r") as f:
    touch(f)
    f.visititems(lambda name, obj: touch(obj))
"""


_VERDICTS: dict[str, str | None] = {}  # SHA-256 of the bytes -> why refused, or None


def _crashed(raw: bytes) -> str | None:
    """Why the child did not finish normally, or None."""
    limit = decoded_limit()
    mem = 4 * limit + 2**30  # the largest dataset read, copies, and the interpreter itself
    try:
        r = subprocess.run(
            [sys.executable, "-c", _CHILD, str(mem), str(limit)],
            input=raw,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"reading it took over {TIMEOUT_S:.0f} s"
    if r.returncode < 0 or r.returncode > 1:
        return "the HDF5 library crashed reading it"
    return None


def h5_preflight(raw: bytes, filename: str) -> None:
    """Refuse ``raw`` (an HDF5 file's bytes) with an InputError if reading it crashes libhdf5.

    Bytes that are not HDF5 at all pass: the readers' signature checks refuse them."""
    if bytes(raw[:8]) != b"\x89HDF\r\n\x1a\n":
        return
    raw = bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if digest not in _VERDICTS:
        if len(_VERDICTS) >= 256:
            _VERDICTS.clear()
        _VERDICTS[digest] = _crashed(raw)
    why = _VERDICTS[digest]
    if why:
        raise InputError(f"{filename}: damaged HDF5 file ({why})")
