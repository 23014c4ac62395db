"""Zip archives and folders of user files (a BraTS case, a DICOM series), read safely.

Only regular members are read; their declared sizes are checked against the upload limit before
anything is decompressed (a zip bomb declares small sizes in vain: ``zipfile`` stops reading a
member at its declared size and checks the CRC), and at most ``MAX_MEMBERS`` files are read.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from workbench.errors import InputError
from workbench.io.limits import ZIP_ERRORS
from workbench.io.validate import check_size

MAX_MEMBERS = 4096
ZIP_SIGNATURE = b"PK\x03\x04"


def read_zip(data: bytes, filename: str = "upload.zip") -> dict[str, bytes]:
    """Members of a zip archive as ``{base name: bytes}`` (folders flattened, hidden files and
    macOS resource forks skipped)."""
    if not bytes(data[:4]) == ZIP_SIGNATURE:
        raise InputError(f"{filename} is not a zip archive")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        raise InputError(f"{filename} is not a valid zip archive") from None
    infos = [
        i
        for i in zf.infolist()
        if not i.is_dir()
        and "__MACOSX" not in i.filename
        and not os.path.basename(i.filename).startswith(".")
    ]
    if len(infos) > MAX_MEMBERS:
        raise InputError(f"{filename} holds {len(infos)} files; at most {MAX_MEMBERS} are read")
    check_size(sum(i.file_size for i in infos), f"{filename} (uncompressed)")
    out: dict[str, bytes] = {}
    for i in infos:
        name = os.path.basename(i.filename)
        if name in out:
            raise InputError(f"{filename}: two members are named {name}")
        try:
            out[name] = zf.read(i)
        except ZIP_ERRORS as exc:
            msg = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise InputError(f"{filename}: member {name} is corrupt ({msg})") from None
    if not out:
        raise InputError(f"{filename} is empty")
    return out


def zip_folder(path: str | os.PathLike) -> bytes:
    """The regular files directly inside a folder, as an in-memory zip (so a folder given on the
    command line reaches the same reader as an uploaded archive)."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise InputError(f"{p} holds no files")
    if len(files) > MAX_MEMBERS:
        raise InputError(f"{p} holds {len(files)} files; at most {MAX_MEMBERS} are read")
    check_size(sum(f.stat().st_size for f in files), p.name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for f in files:
            zf.writestr(f.name, f.read_bytes())
    return buf.getvalue()
