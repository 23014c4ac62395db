"""The bundled MNI152 templates read without nibabel: a minimal NIfTI-1 (``.nii.gz``) reader.

The MRI samples and the tumour atlas read three uint8 templates that ship inside nilearn.
Importing nibabel to do so cost more than the read itself (about 0.3 s of every CLI call), so
this reads the one layout they use -- a single-file NIfTI-1 volume, 3-D, unscaled integers or
floats -- and returns ``None`` for anything else, for the caller to fall back on nibabel. The
array is what ``numpy.asanyarray(nibabel.load(path).dataobj)`` gives (same dtype, values and
column-major layout; ``tests/mri/test_mni_template.py`` checks it against nibabel).

Header fields (NIfTI-1, 348 bytes): ``dim`` int16[8] at 40, ``datatype`` int16 at 70,
``vox_offset`` float32 at 108, ``scl_slope``/``scl_inter`` float32 at 112/116, ``sform_code``
int16 at 254, ``srow_x/y/z`` float32[4] at 280/296/312, magic ``n+1`` at 344.
"""

from __future__ import annotations

import gzip

import numpy as np

_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


def read_nifti_gz(path) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(data, affine)`` of a 3-D single-file NIfTI-1 volume; ``affine`` from the sform (None
    without one). ``None`` when the file uses anything else (scaling, 4-D, another format)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 352:
        return None
    for end in ("<", ">"):
        if int(np.frombuffer(raw, end + "i4", 1, 0)[0]) == 348:
            break
    else:
        return None
    if raw[344:347] != b"n+1":
        return None
    dim = np.frombuffer(raw, end + "i2", 8, 40)
    code = int(np.frombuffer(raw, end + "i2", 1, 70)[0])
    offset = int(np.frombuffer(raw, end + "f4", 1, 108)[0])
    slope, inter = (float(v) for v in np.frombuffer(raw, end + "f4", 2, 112))
    if dim[0] != 3 or code not in _DTYPES or slope not in (0.0, 1.0) or inter != 0.0:
        return None
    shape = tuple(int(n) for n in dim[1:4])
    count = int(np.prod(shape))
    dtype = np.dtype(end + _DTYPES[code])
    if offset < 352 or offset + count * dtype.itemsize > len(raw):
        return None
    data = np.frombuffer(raw, dtype, count, offset).reshape(shape, order="F")
    data = data.astype(dtype.newbyteorder("="))  # native order, a writable copy
    affine = None
    if int(np.frombuffer(raw, end + "i2", 1, 254)[0]) > 0:
        affine = np.eye(4)
        affine[:3] = np.frombuffer(raw, end + "f4", 12, 280).reshape(3, 4)
    return data, affine
