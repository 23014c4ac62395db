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


# ------------------------------------------------------------------------------------------
# segmentations not on the atlas (issue 18): refused with the reason and the registration hint
# ------------------------------------------------------------------------------------------

HINT = "register it to MNI152 2009, or upload it with its anatomical image"


def _sphere_3mm(centre, r_wt=15.0, r_tc=7.0):
    """A BraTS-labelled sphere on a 3 mm axis-aligned MNI grid covering the atlas box."""
    shape = (60, 72, 60)
    aff = np.array([[3.0, 0, 0, -90.0], [0, 3.0, 0, -126.0], [0, 0, 3.0, -72.0], [0, 0, 0, 1.0]])
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    r = np.linalg.norm(ijk @ aff[:3, :3].T + aff[:3, 3] - np.asarray(centre, float), axis=-1)
    lab = np.zeros(shape, np.uint8)
    lab[r < r_wt] = 2
    lab[r < r_tc] = 4
    return lab, aff


def _rotation(deg):
    t = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def test_native_oblique_brain_mask_refused():
    # a brain mask in the scanner's space: 2 mm voxels, rotated 15 degrees, scanner origin
    shape = (90, 110, 80)
    aff = np.eye(4)
    aff[:3, :3] = _rotation(15.0) * 2.0
    aff[:3, 3] = [-90.0, -100.0, -60.0]
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    xyz = ijk @ aff[:3, :3].T + aff[:3, 3]
    brain = (((xyz - [0.0, 10.0, 20.0]) / [70.0, 85.0, 60.0]) ** 2).sum(-1) < 1
    with pytest.raises(InputError, match="oblique") as e:
        load(_nii(brain.astype(np.uint8), aff), "brainmask.nii.gz")
    assert HINT in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("case", ["outside", "fov", "anisotropic", "brain_mask", "npz_oblique"])
def test_unregistered_segmentations_refused(case):
    if case == "outside":  # axis-aligned but placed in native coordinates: tumour off the brain
        lab, aff = _sphere_3mm((0.0, 60.0, 60.0))
        data, name, match = _nii(lab, aff), "x.nii.gz", "inside the MNI152 2009 brain"
    elif case == "fov":  # a field of view far from the atlas brain
        lab = np.zeros((20, 20, 20), np.uint8)
        lab[8:12, 8:12, 8:12] = 1
        aff = np.diag([1.0, 1.0, 1.0, 1.0])
        aff[:3, 3] = 200.0
        data, name, match = _nii(lab, aff), "x.nii.gz", "holds only 0% of the MNI152"
    elif case == "anisotropic":  # thick slices: the acquisition grid
        lab = np.zeros((180, 216, 36), np.uint8)
        lab[50:70, 100:120, 15:20] = 2
        aff = np.diag([1.0, 1.0, 5.0, 1.0])
        aff[:3, 3] = [-90.0, -126.0, -72.0]
        data, name, match = _nii(lab, aff), "x.nii.gz", "acquisition grid"
    elif case == "brain_mask":  # the atlas brain itself, uploaded as a "tumour"
        a = load_atlas(32, with_t1=False)
        brain = ((a.gm + a.wm) >= 0.1).astype(np.uint8)
        data, name, match = _nii(brain, a.affine), "x.nii.gz", "brain mask"
    else:
        lab, _ = _sphere_3mm((-25.0, -10.0, 22.0))
        aff = np.eye(4)
        aff[:3, :3] = _rotation(10.0) * 3.0
        buf = io.BytesIO()
        np.savez(buf, wt=(lab > 0).astype(np.uint8), affine=aff)
        data, name, match = buf.getvalue(), "m.npz", "oblique"
    with pytest.raises(InputError, match=match) as e:
        load(data, name)
    assert "\n" not in str(e.value)
    if case != "brain_mask":
        assert HINT in str(e.value)


def test_partly_outside_tumour_loads_with_a_notice():
    lab, aff = _sphere_3mm((-60.0, -10.0, 40.0))
    p = load(_nii(lab, aff), "edge.nii.gz")
    assert 0.5 <= p.meta["inside_brain"] < 0.95
    assert any("registered to MNI152" in n for n in p.meta["notices"])


def test_many_labels_message_is_short():
    lab, aff = _patient_2mm()[:2]
    lab = lab.copy()
    lab.ravel()[:255] = np.arange(1, 256)
    with pytest.raises(InputError, match=r"\(255 labels\)") as e:
        load(_nii(lab, aff), "many.nii.gz")
    assert len(str(e.value)) < 200


def test_cli_notices_in_json_and_refusal_stores_nothing(tmp_path, capsys):
    import json

    from workbench.cli import main
    from workbench.store import RunStore

    lab, aff = _sphere_3mm((-60.0, -10.0, 40.0))
    f = tmp_path / "edge.nii.gz"
    f.write_bytes(_nii(lab, aff))
    args = ["solve", "tumor", "--solver", "cmaes", "--json", "--no-figure"]
    args += ["--param", "max_iter=1", "--param", "grid=32", "--out", str(tmp_path / "o")]
    assert main([*args, "--input", str(f)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert any("registered to MNI152" in n for n in summary["notices"])
    n_runs = len(RunStore().list())
    lab, aff = _sphere_3mm((0.0, 60.0, 60.0))
    g = tmp_path / "off.nii.gz"
    g.write_bytes(_nii(lab, aff))
    assert main([*args, "--input", str(g)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and HINT in err
    assert len(RunStore().list()) == n_runs
