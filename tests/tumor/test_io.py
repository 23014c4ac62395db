"""Segmentation upload (NIfTI / NPZ), validation, and NIfTI export keeping the input's affine."""

import gzip
import io

import nibabel as nib
import numpy as np
import pytest

from workbench.datasets.tumor import DOMAIN, load
from workbench.errors import InputError
from workbench.io.tumor_nifti import export_nifti, read_nifti
from workbench.physics.tumor.atlas import load_atlas
from workbench.physics.tumor.metrics import dice
from workbench.result import Result


def _nii(vol, affine, gz=True, dtype=np.uint8):
    img = nib.Nifti1Image(np.asarray(vol).astype(dtype), affine)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def _patient_2mm():
    """A BraTS-2021-labelled blob on a 2 mm grid with a flipped, shifted, permuted affine."""
    shape = (80, 100, 90)
    aff = np.array(
        [[0.0, -2.0, 0.0, 100.0], [2.0, 0.0, 0.0, -130.0], [0.0, 0.0, 2.0, -75.0], [0, 0, 0, 1.0]]
    )
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(float)
    xyz = ijk @ aff[:3, :3].T + aff[:3, 3]
    r = np.linalg.norm(xyz - np.array([-25.0, -10.0, 22.0]), axis=-1)
    lab = np.zeros(shape, np.uint8)
    lab[r < 22] = 2
    lab[r < 12] = 4
    lab[r < 6] = 1
    return lab, aff, xyz


def test_nifti_upload_and_round_trip_keeps_affine():
    lab, aff, _ = _patient_2mm()
    prob = load(_nii(lab, aff), "seg.nii.gz")
    assert prob.grid_n == 64 and prob.wt.shape == (64, 64, 64)
    np.testing.assert_allclose(prob.input_affine, aff)
    assert prob.meta["preset"] == "brats2021"
    v_wt, v_tc = prob.volumes_cm3
    assert v_wt == pytest.approx(4 / 3 * np.pi * 22**3 / 1000, rel=0.15)
    assert v_tc == pytest.approx(4 / 3 * np.pi * 12**3 / 1000, rel=0.3)
    # export a "prediction" = the problem's own masks as a density, back in the input space
    u = prob.wt * 0.5 + prob.tc * 0.5
    res = Result(output=u.astype(np.float32), kind="volume")
    files = export_nifti(prob, res)
    img = read_nifti(files["pred_wt.nii.gz"], "pred_wt.nii.gz")
    np.testing.assert_allclose(img.affine, aff, atol=1e-5)
    assert img.shape == lab.shape
    assert dice(np.asarray(img.dataobj) > 0, lab > 0) > 0.85
    seg = read_nifti(files["pred_segmentation.nii.gz"], "x")
    np.testing.assert_allclose(seg.affine, aff, atol=1e-5)
    atlas_space = export_nifti(prob, res, space="atlas")
    img2 = read_nifti(atlas_space["concentration.nii.gz"], "c")
    np.testing.assert_allclose(img2.affine, load_atlas(64, with_t1=False).affine, atol=1e-5)


def test_uncompressed_nifti_and_presets():
    lab, aff, _ = _patient_2mm()
    lab23 = np.where(lab == 4, 3, lab)
    p = load(_nii(lab23, aff, gz=False), "seg.nii")
    assert p.meta["preset"] == "brats2023"
    g = np.zeros_like(lab)
    g[lab == 2] = 3
    g[lab == 4] = 1
    g[lab == 1] = 4
    p2 = load(_nii(g, aff), "seg.nii.gz", labels="gliodil")
    assert p2.tc.sum() > 0 and p2.wt.sum() == pytest.approx(p.wt.sum(), rel=0.05)


def test_npz_masks_on_working_grid():
    a = load_atlas(32, with_t1=False)
    wt = np.zeros((32, 32, 32), np.uint8)
    wt[10:16, 12:18, 14:20] = 1
    tc = np.zeros_like(wt)
    tc[12:14, 14:16, 16:18] = 1
    buf = io.BytesIO()
    np.savez(buf, wt=wt, tc=tc)
    p = load(buf.getvalue(), "m.npz", grid=32)
    np.testing.assert_array_equal(p.wt, wt)
    np.testing.assert_array_equal(p.tc, tc)
    np.testing.assert_allclose(p.affine, a.affine)


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "empty",
        "labels",
        "4d",
        "sri24",
        "float_labels",
        "nan",
        "bad_affine",
        "npz_pickle",
    ],
)
def test_bad_inputs_raise_input_error(case):
    lab, aff, _ = _patient_2mm()
    if case == "garbage":
        data, name = b"not a nifti file at all" * 20, "x.nii.gz"
    elif case == "empty":
        data, name = _nii(np.zeros_like(lab), aff), "x.nii.gz"
    elif case == "labels":
        bad = lab.copy()
        bad[0, 0, 0] = 7
        data, name = _nii(bad, aff), "x.nii.gz"
    elif case == "4d":
        data, name = _nii(np.stack([lab, lab], -1), aff), "x.nii.gz"
    elif case == "sri24":
        data, name = _nii(np.ones((240, 240, 155), np.uint8), np.eye(4)), "x.nii.gz"
    elif case == "float_labels":
        data, name = _nii(lab * 0.5, aff, dtype=np.float32), "x.nii.gz"
    elif case == "nan":
        f = lab.astype(np.float32)
        f[0, 0, 0] = np.nan
        data, name = _nii(f, aff, dtype=np.float32), "x.nii.gz"
    elif case == "bad_affine":
        data, name = _nii(lab, np.diag([1.0, 1.0, 1e-12, 1.0])), "x.nii.gz"
    else:
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        data, name = buf.getvalue(), "x.npy"
    with pytest.raises(InputError):
        load(data, name)


def test_samples_have_truth():
    p = DOMAIN.sample("synthetic_small")
    assert p.wt.any() and p.tc.any() and p.meta["truth"]["ell_mm"] > 0
    assert p.truth_density.shape == p.wt.shape
    assert np.all(p.tc <= p.wt)
