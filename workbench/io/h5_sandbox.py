"""Run an HDF5 reader once in a child process before the server runs it on uploaded bytes.

libhdf5 is C code, and a damaged file can crash it, not only make it raise. One byte flipped in
a 51 KB ISMRMRD file made it abort the whole interpreter with "double free or corruption" while
reading the acquisition table; another, in a HyperSpy file, made it segfault while the reader
listed a metadata group's attributes (``tests/core/test_damaged_uploads.py``). In the app that
interpreter is the server. So each reader, before it opens uploaded bytes with h5py, calls
:func:`h5_preflight` with its own name: a fresh ``python`` runs that same reader on the same bytes
with the same arguments, under an address-space limit and a timeout. Memory corruption depends
on the exact sequence of library calls -- a generic walk of every object survived the second
file, which the reader then crashed on -- so the child repeats the reader's own sequence. If the
child dies by a signal or an abort, or runs out of time, the file is refused in one line and the
server never opens it. If the child raises an ordinary exception, the reader in process gives
the specific message.

Nothing comes back from the child but its exit status: no pickle, no arrays. Verdicts are cached
by the bytes' SHA-256 and the reader. Cost: a Python start and the reader's imports, about
0.3-0.6 s per upload and reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from workbench.errors import InputError
from workbench.io.limits import decoded_limit

TIMEOUT_S = 120.0
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_IN_CHILD = "WORKBENCH_H5_PREFLIGHT_CHILD"

_CHILD = r"""
import importlib, json, os, resource, sys
mem = int(sys.argv[1])
try:
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
except (ValueError, OSError):
    pass
module, name = sys.argv[2].split(":")
kwargs = json.loads(sys.argv[4])
reader = getattr(importlib.import_module(module), name)
try:
    reader(sys.stdin.buffer.read(), sys.argv[3], **kwargs)
except Exception:  # an ordinary refusal: the reader in the server says why
    sys.exit(1)
"""

_VERDICTS: dict[tuple[str, str], str | None] = {}  # (SHA-256, reader) -> why refused, or None


def _crashed(raw: bytes, reader: str, filename: str, kwargs: dict) -> str | None:
    """Why the child running ``reader`` did not finish normally, or None."""
    mem = 4 * decoded_limit() + 2**30  # the largest array read, copies, and the interpreter
    env = dict(os.environ, **{_IN_CHILD: "1", "OMP_NUM_THREADS": "1"})
    try:
        r = subprocess.run(
            [sys.executable, "-c", _CHILD, str(mem), reader, filename, json.dumps(kwargs)],
            input=raw,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return f"reading it took over {TIMEOUT_S:.0f} s"
    if r.returncode < 0 or r.returncode > 1:
        return "the HDF5 library crashed reading it"
    return None


def h5_preflight(raw: bytes, filename: str, reader: str, **kwargs) -> None:
    """Refuse ``raw`` with an InputError if ``reader`` ("module:function", called as
    ``function(raw, filename, **kwargs)``; the keywords must be JSON) crashes on it in a child.

    Bytes that are not HDF5 pass (the readers' signature checks refuse them), and so does every
    call inside the child itself."""
    if os.environ.get(_IN_CHILD) or bytes(raw[:8]) != HDF5_SIGNATURE:
        return
    raw = bytes(raw)
    key = (hashlib.sha256(raw).hexdigest(), f"{reader} {json.dumps(kwargs, sort_keys=True)}")
    if key not in _VERDICTS:
        if len(_VERDICTS) >= 256:
            _VERDICTS.clear()
        _VERDICTS[key] = _crashed(raw, reader, filename, kwargs)
    why = _VERDICTS[key]
    if why:
        raise InputError(f"{filename}: damaged HDF5 file ({why})")
