"""fastMRI HDF5, NIfTI and NPY I/O (spec M11) and upload validation."""

import io

import h5py
import numpy as np
import pytest

from workbench.datasets.mri import DOMAIN, load
from workbench.errors import InputError
from workbench.io.mri_fastmri import (
    make_header,
    parse_header,
    read_fastmri,
    reconstruction_bytes,
)
from workbench.io.mri_nifti import nifti_bytes, read_nifti
from workbench.physics.mri.acquisition import rss_full
from workbench.physics.mri.metrics import center_crop
from workbench.solvers.mri import zero_filled


def test_round_trip_exact_and_rss(tmp_path, fastmri_file):
    p, k, rss = fastmri_file(tmp_path)
    d = read_fastmri(str(p))
    np.testing.assert_array_equal(d["kspace"], k)
    np.testing.assert_array_equal(d["reconstruction_rss"], rss)
    assert d["attrs"]["acquisition"] == "AXT1"
    assert d["header"]["recon_size"] == (16, 24) and d["header"]["enc_size"] == (64, 48)
    # RSS of the full k-space, cropped, equals reconstruction_rss
    own = center_crop(rss_full(d["kspace"]), (16, 24))
    assert np.max(np.abs(own - rss)) <= 1e-5 * rss.max()


def test_header_padding():
    hdr = parse_header(make_header((640, 372), (320, 320), center=180, maximum=355))
    assert hdr["padding"] == (372 // 2 - 180, 372 // 2 - 180 + 356)


def test_problem_from_file_applies_mask_and_crops(tmp_path, fastmri_file):
    p, k, rss = fastmri_file(tmp_path)
    prob = load(
        p.read_bytes(), "file.h5", mask="equispaced", acceleration=4, center_fraction=0.08, seed=0
    )
    assert prob.kspace.shape == (2, 4, 64, 48)
    assert prob.reference_kind == "file_rss" and prob.recon_size == (16, 24)
    band = prob.meta["header"]["padding"]
    m = prob.mask
    assert m[:, : band[0]].sum() == 0 and m[:, band[1] :].sum() == 0
    r = zero_filled.solve(prob)
    assert r.output.shape == (2, 16, 24)
    full = load(p.read_bytes(), "file.h5", mask="none")
    assert DOMAIN.evaluate(full, zero_filled.solve(full))["psnr"] > 60


def test_single_coil_and_file_mask(tmp_path, fastmri_file):
    p, _, _ = fastmri_file(tmp_path, single=True)
    prob = load(p.read_bytes(), "single.h5")
    assert prob.kspace.shape[1] == 1 and prob.maps_source == "unit"
    p2, _, _ = fastmri_file(tmp_path, with_mask=True, name="test.h5")
    prob2 = load(p2.read_bytes(), "test.h5")
    assert prob2.meta["mask"] == "file"
    assert prob2.mask.shape == (64, 48) and (prob2.mask[:, 1::4][:, :4] == 0).all()


def _h5(**datasets):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return buf.getvalue()


K = (np.ones((1, 2, 8, 8)) + 0j).astype(np.complex64)


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"not an hdf5 file at all", "not an HDF5"),
        (_h5(image=np.zeros((2, 2))), "no 'kspace'"),
        (_h5(kspace=np.ones((8, 8), np.complex64)), "must be"),
        (_h5(kspace=np.ones((1, 2, 8, 8), np.float32)), "complex"),
        (_h5(kspace=K * np.nan), "NaN"),
        (_h5(kspace=K, mask=np.ones(5)), "mask has 5 columns"),
    ],
)
def test_invalid_files(data, msg):
    with pytest.raises(InputError, match=msg):
        load(data, "bad.h5")


def test_reconstruction_export():
    b = reconstruction_bytes(np.ones((2, 4, 4)), {"acquisition": "AXT1"})
    with h5py.File(io.BytesIO(b), "r") as f:
        assert f["reconstruction"].shape == (2, 4, 4) and f.attrs["max"] == 1.0


def test_nifti_round_trip_and_upload():
    vol = np.random.default_rng(0).uniform(size=(3, 32, 32)).astype(np.float32)
    b = nifti_bytes(vol, voxel=(1.0, 1.0, 2.0))
    back, aff = read_nifti(b, "v.nii")
    assert back.shape == (32, 32, 3) and aff[2, 2] == 2.0
    np.testing.assert_allclose(np.transpose(back, (2, 1, 0))[:, ::-1, :], vol)
    prob = load(b, "v.nii", size=32)
    assert prob.kspace.shape[1:] == (8, 32, 32) and prob.reference_kind == "sense_noisy_full"
    with pytest.raises(InputError):
        load(b"\x00" * 400, "bad.nii")


def test_npy_and_npz(tmp_path):
    p = DOMAIN.sample("mni_slice", mask="none", maps="true")
    k = p.kspace[0]
    buf = io.BytesIO()
    np.save(buf, k)
    q = load(buf.getvalue(), "k.npy", acceleration=4)
    assert q.kspace.shape == (1, 8, 64, 64) and q.meta["mask"] == "equispaced"
    buf = io.BytesIO()
    np.savez(buf, kspace=p.kspace, maps=p.maps, reference=p.reference)
    r = load(buf.getvalue(), "k.npz", maps="true")
    assert r.maps_source == "file"
    with pytest.raises(InputError, match="complex"):
        b2 = io.BytesIO()
        np.save(b2, np.ones((4, 4)))
        load(b2.getvalue(), "r.npy")
    with pytest.raises(InputError):
        load(b"hello", "x.npy")
    with pytest.raises(InputError, match="unsupported"):
        load(b"hello", "x.txt")
