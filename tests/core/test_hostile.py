"""Hostile files: each is refused with one line before the reader allocates what it declares.

Fixtures are generated here, a few KB each (no large files in git). Where a case needs a payload
past the limit, the limit is lowered (``WORKBENCH_MAX_DECODED_MB``) instead of writing gigabytes.
Peak memory is measured with tracemalloc, which sees numpy's allocations.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from workbench import registry
from workbench.errors import InputError

MB = 2**20


def refused(load, data: bytes, filename: str, match: str, **kw) -> None:
    """``load`` refuses with a one-line InputError matching ``match``, peak memory < 64 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=match) as err:
            load(data, filename, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.count(filename) <= 1, msg
    assert peak < 64 * MB, f"{peak / MB:.0f} MiB allocated before refusing"


def nifti_declaring(shape, dtype=np.float32) -> bytes:
    """A NIfTI-1 header that declares ``shape`` followed by no voxel data (a 352-byte file)."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    buf = io.BytesIO()
    hdr.write_to(buf)
    return buf.getvalue() + b"\0" * 4


def npz_with_zero_member(nbytes: int, name: str = "kspace") -> bytes:
    """An NPZ whose one member inflates to ``nbytes`` of zeros (deflate: ~1000x smaller)."""
    n = nbytes // 8
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<c8", "fortran_order": False, "shape": (n // 8, 1, 4, 2)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(f"{name}.npy", "w") as fp:
        fp.write(header.getvalue())
        zero = bytes(MB)
        for _ in range(nbytes // MB):
            fp.write(zero)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width`` x ``height``, with a tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setenv("WORKBENCH_MAX_DECODED_MB", "16")


def test_nifti_header_declaring_a_gigabyte_is_refused_from_the_header():
    data = nifti_declaring((1024, 1024, 256))  # 1 GiB of float32 declared, 356 bytes present
    assert len(data) < 1500
    for domain in ("mri", "tumor"):
        refused(registry.get_domain(domain).load, data, "big.nii", "limit|declares")


def test_nifti_header_larger_than_its_bytes_is_refused():
    data = nifti_declaring((64, 64, 64))  # 1 MiB declared, nothing present
    refused(registry.get_domain("mri").load, data, "short.nii", "declares")


def test_gzip_bomb_is_refused_while_inflating(small_limit):
    data = gzip.compress(bytes(40 * MB), compresslevel=9)
    assert len(data) < 100_000
    refused(registry.get_domain("tumor").load, data, "bomb.nii.gz", "gzip stream")


def test_npz_member_inflating_past_the_limit_is_refused(small_limit):
    data = npz_with_zero_member(32 * MB)
    assert len(data) < 200_000
    refused(registry.get_domain("mri").load, data, "bomb.npz", "limit")
    refused(registry.get_domain("ot").load, data, "bomb.npz", "limit")
    refused(
        registry.get_domain("tumor").load, npz_with_zero_member(32 * MB, "wt"), "b.npz", "limit"
    )


def test_npz_with_object_member_is_refused_without_unpickling():
    buf = io.BytesIO()
    np.savez(buf, kspace=np.array([{"a": 1}], dtype=object))
    refused(registry.get_domain("mri").load, buf.getvalue(), "obj.npz", "pickled")


def test_hdf5_dataset_declaring_a_gigabyte_is_refused_before_reading(tmp_path):
    import h5py

    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:  # chunked + compressed: a few KB on disk
        f.create_dataset(
            "kspace", shape=(64, 16, 512, 512), dtype=np.complex64, chunks=True, compression="gzip"
        )
    data = path.read_bytes()
    assert len(data) < 200_000
    refused(registry.get_domain("mri").load, data, "big.h5", "limit")


def test_png_declaring_twelve_thousand_squared_is_refused_from_its_header():
    data = png_declaring(12000, 12000)
    assert len(data) < 200
    refused(registry.get_domain("ot").load, data, "huge.png", "pixels")


def test_limit_is_read_from_the_environment(monkeypatch):
    from workbench.io.limits import decoded_limit

    monkeypatch.setenv("WORKBENCH_MAX_DECODED_MB", "3")
    assert decoded_limit() == 3 * MB
    monkeypatch.delenv("WORKBENCH_MAX_DECODED_MB")
    assert decoded_limit() == 1024 * MB


def test_npz_within_the_limit_still_loads_only_requested_keys():
    from workbench.io.limits import load_npz_arrays

    buf = io.BytesIO()
    np.savez(buf, a=np.arange(5), b=np.ones((2, 2)))
    out = load_npz_arrays(buf.getvalue(), "ok.npz", keys=["a"])
    assert list(out) == ["a"] and out["a"].tolist() == [0, 1, 2, 3, 4]
