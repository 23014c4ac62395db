"""Decoded-size guards for every reader: check what a file *declares* before allocating it.

A 1.4 KB NIfTI header can declare a 1 GiB volume, a 1.5 MB ``.npz`` can hold a 1.5 GiB run of
zeros, a 500 KB ``.nii.gz`` can inflate to gigabytes and a small PNG can declare 12000² pixels.
Each guard below reads only headers (or decompresses in bounded chunks) and refuses with one line
when the decoded data would exceed :func:`decoded_limit`, before any array is built. The limit is
shared by the CLI and the app: ``WORKBENCH_MAX_DECODED_MB`` (default 1024 MiB).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator

import numpy as np

from workbench.errors import InputError

DEFAULT_DECODED_MB = 1024


def decoded_limit() -> int:
    """Largest decoded payload accepted, in bytes (``WORKBENCH_MAX_DECODED_MB``)."""
    try:
        mb = float(os.environ.get("WORKBENCH_MAX_DECODED_MB", DEFAULT_DECODED_MB))
    except ValueError:
        mb = DEFAULT_DECODED_MB
    return int(max(mb, 1) * 2**20)


def check_decoded(nbytes: int, filename: str, what: str = "data") -> None:
    """Refuse ``nbytes`` of decoded data above the limit, naming the file once."""
    limit = decoded_limit()
    if nbytes > limit:
        raise InputError(
            f"{filename}: the {what} would take {nbytes / 2**20:,.0f} MiB decoded; the limit is "
            f"{limit / 2**20:,.0f} MiB (WORKBENCH_MAX_DECODED_MB)"
        )


def _declared_nbytes(shape: Iterable[int], itemsize: int) -> int:
    n = int(itemsize)
    for s in shape:
        n *= int(s)
    return n


# -- gzip ----------------------------------------------------------------------------------------


def gunzip(data: bytes, filename: str) -> bytes:
    """Decompress gzip bytes in bounded chunks; refuse a stream that inflates past the limit."""
    limit = decoded_limit()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    chunk = memoryview(data)
    try:
        while True:
            out += d.decompress(chunk, 1 << 20)
            if len(out) > limit:
                check_decoded(len(out) + len(d.unconsumed_tail), filename, "gzip stream")
            chunk = d.unconsumed_tail
            if not chunk:
                break
        out += d.flush()
    except zlib.error:
        raise InputError(f"{filename}: corrupt gzip stream") from None
    if not d.eof:
        raise InputError(f"{filename}: truncated gzip stream")
    check_decoded(len(out), filename, "gzip stream")
    return bytes(out)


# -- NPY / NPZ -------------------------------------------------------------------------------------


def _npy_header(fp, filename: str, name: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unknown NPY version {version}")
    except Exception:  # noqa: BLE001 - numpy raises several types for bad headers
        raise InputError(f"{filename}: {name} is not a valid NPY array") from None
    if dtype.hasobject:
        raise InputError(f"{filename} holds pickled objects, which are never loaded")
    return tuple(int(s) for s in shape), dtype


def check_npy(data: bytes, filename: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an NPY file from its header, refusing objects and oversized arrays."""
    shape, dtype = _npy_header(io.BytesIO(data), filename, "the file")
    check_decoded(_declared_nbytes(shape, dtype.itemsize), filename, "array")
    return shape, dtype


# what ``zipfile`` raises on a damaged archive: its own BadZipFile, and from the offsets and
# fields it trusts a negative seek (ValueError), a short read (EOFError, struct.error), a bad
# deflate stream (zlib.error), an unknown method (NotImplementedError) or encryption (RuntimeError)
ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    struct.error,
)


def check_npz(data: bytes, filename: str, keys: Iterable[str] | None = None) -> list[str]:
    """Names of the arrays in an NPZ, after checking the members that will be read.

    Only ``keys`` (all members when None) are checked: each member's NPY header gives its declared
    size, which with the zip's own uncompressed size must stay within the limit, in total too.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
    except ZIP_ERRORS:
        raise InputError(f"{filename} is not a valid NPZ file") from None
    wanted = list(infos) if keys is None else [k for k in keys if k in infos]
    total = 0
    with zf:
        for k in wanted:
            info = infos[k]
            check_decoded(info.file_size, filename, f"array {k!r}")
            try:
                with zf.open(info) as fp:
                    shape, dtype = _npy_header(fp, filename, f"array {k!r}")
            except InputError:  # the header's own verdict (an InputError is a ValueError)
                raise
            except ZIP_ERRORS:
                raise InputError(f"{filename}: array {k!r} is corrupt") from None
            total += max(_declared_nbytes(shape, dtype.itemsize), info.file_size)
            check_decoded(total, filename, "arrays")
    return list(infos)


def load_npz_arrays(
    data: bytes, filename: str, keys: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when None) of an NPZ, size-checked first; never unpickles."""
    names = check_npz(data, filename, keys)
    wanted = names if keys is None else [k for k in keys if k in names]
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in wanted}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{filename} holds pickled objects, which are never loaded") from None
        raise InputError(f"{filename} is not a valid NPZ file") from None
    except ZIP_ERRORS:
        raise InputError(f"{filename} is not a valid NPZ file") from None


def load_npy_array(data: bytes, filename: str) -> np.ndarray:
    """An NPY array, size-checked from its header first; never unpickles."""
    check_npy(data, filename)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise InputError(f"{filename} is not a valid NPY file") from None


# -- NIfTI -----------------------------------------------------------------------------------------


def open_nifti(data: bytes, filename: str):
    """A nibabel NIfTI-1/2 image from bytes (optionally gzipped), with its declared volume checked
    against the limit and against the bytes actually present, before any voxel is read."""
    import nibabel as nib

    raw = gunzip(data, filename) if data[:2] == b"\x1f\x8b" else data
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            hdr = cls.header_class.from_fileobj(io.BytesIO(raw), check=False)
        except Exception:  # noqa: BLE001 - nibabel raises many types for bad headers
            continue
        try:
            shape = tuple(int(s) for s in hdr.get_data_shape())
            itemsize = np.dtype(hdr.get_data_dtype()).itemsize
            offset = int(hdr.get_data_offset())
        except Exception:  # noqa: BLE001
            continue
        if any(s < 0 for s in shape):
            break
        need = _declared_nbytes(shape, itemsize)
        check_decoded(need, filename, "volume")
        if offset + need > len(raw):
            raise InputError(
                f"{filename}: the header declares {need:,} bytes of voxels but the file holds "
                f"{max(len(raw) - offset, 0):,}"
            )
        try:
            img = cls.from_bytes(raw)
        except Exception:  # noqa: BLE001
            continue
        return img
    raise InputError(f"{filename} is not a valid NIfTI file")


# -- HDF5 ------------------------------------------------------------------------------------------


# what h5py raises for a damaged file, by the HDF5 error stack's mapping (and its own checks)
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, OverflowError)


@contextlib.contextmanager
def h5_damage(filename: str) -> Iterator[None]:
    """Inside: the HDF5 library's errors on a damaged file become one-line InputErrors.

    A file that opens can still hold corrupt metadata (an address past the end of the file, a bad
    heap pointer, an impossible datatype or dataspace); h5py reports each as whatever exception
    its C error stack maps to (:data:`H5_ERRORS`, a UnicodeDecodeError among the ValueErrors)
    while a reader walks the file. An InputError of the reader passes unchanged. A damaged file
    can also crash the library outright: see :mod:`workbench.io.h5_sandbox`.
    """
    try:
        yield
    except InputError:
        raise
    except H5_ERRORS as e:
        text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)  # KeyError: no repr
        first = (text.strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"{filename}: damaged HDF5 file ({first[:160]})") from None


def check_h5_dataset(ds, filename: str) -> None:
    """Refuse an HDF5 object that is not an array (a damaged link can name a group or a
    committed type), or a dataset whose declared shape exceeds the limit, before reading it."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{filename}: {getattr(ds, 'name', None) or 'an entry'} is not an array")
    check_decoded(
        _declared_nbytes(ds.shape or (), ds.dtype.itemsize), filename, f"dataset {ds.name!r}"
    )


# -- images ----------------------------------------------------------------------------------------


def open_image(data: bytes, filename: str, max_pixels: int = 4096 * 4096):
    """A decoded PIL image, after checking its declared size (pixels and bytes) from the header."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():  # PIL's bomb warning: we refuse by our own limit below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        raise InputError(f"{filename} is not a readable image") from None
    w, h = img.size
    if w * h > max_pixels:
        raise InputError(f"{filename}: {w}x{h} pixels; the limit is {max_pixels:,} pixels")
    check_decoded(w * h * max(len(img.getbands()), 1) * 4, filename, "image")
    try:
        img.load()
    except Exception:  # noqa: BLE001
        raise InputError(f"{filename} is not a readable image") from None
    return img
