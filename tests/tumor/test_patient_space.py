"""Tumour inputs in patient space: registration to MNI152 2009, BraTS case files, results back.

Fixtures are made here: the MNI152 T1 template warped by a known affine onto a patient grid
(a BraTS-like LPS-flipped affine), and a labelled tumour in MNI space carried along with it.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from workbench.errors import InputError
from workbench.io.tumor_nifti import nifti_bytes, to_input_space
from workbench.physics.tumor import registration as R
from workbench.physics.tumor.atlas import _templates_1mm

MNI_AFFINE = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])
# patient grid: 1.5 mm voxels, x and y flipped (as BraTS/SRI24 files are), 160 x 160 x 104
PATIENT_SHAPE = (160, 160, 104)
PATIENT_AFFINE = np.array(
    [[-1.5, 0, 0, 119.25], [0, -1.5, 0, 119.25], [0, 0, 1.5, -77.0], [0, 0, 0, 1.0]]
)


def known_map() -> np.ndarray:
    """MNI mm -> patient mm: rotation (8, 5, -3 degrees), anisotropic scale, translation."""
    t = np.eye(4)
    rot = Rotation.from_euler("zxy", [8.0, 5.0, -3.0], degrees=True).as_matrix()
    t[:3, :3] = rot @ np.diag([1.05, 0.97, 1.02])
    t[:3, 3] = [6.0, -4.0, 10.0]
    return t


def mni_labels() -> np.ndarray:
    """A BraTS 2023 label image on the 1 mm MNI grid: oedema (2) around a core of necrosis (1)
    and enhancing rim (3), centred in the left frontal white matter."""
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in (197, 233, 189)], indexing="ij")
    xyz = np.stack([ii, jj, kk], -1) @ MNI_AFFINE[:3, :3].T + MNI_AFFINE[:3, 3]
    r = np.linalg.norm((xyz - np.array([-26.0, 10.0, 22.0])) / np.array([1.0, 1.2, 1.0]), axis=-1)
    lab = np.zeros(r.shape, np.uint8)
    lab[r < 20] = 2
    lab[r < 11] = 3
    lab[r < 6] = 1
    return lab


@pytest.fixture(scope="module")
def case():
    """The warped template (image) and labels on the patient grid, as NIfTI bytes."""
    _, _, t1 = _templates_1mm()
    t = known_map()
    view = np.linalg.inv(t) @ PATIENT_AFFINE  # patient voxel -> MNI mm
    img = R.resample(t1 * 900.0, MNI_AFFINE, PATIENT_SHAPE, view, order=1)
    lab = R.resample(mni_labels(), MNI_AFFINE, PATIENT_SHAPE, view, order=0)
    return {
        "image": img,
        "labels": lab,
        "t": t,
        "seg_bytes": nifti_bytes(lab, PATIENT_AFFINE, np.uint8),
        "img_bytes": nifti_bytes(img.astype(np.float32), PATIENT_AFFINE, np.float32),
    }


@pytest.fixture(scope="module")
def loaded(case):
    """The case as a BraTS 2023 zip through the domain's loader (one registration)."""
    from workbench.datasets.tumor import load

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("BraTS-GLI-00042-000/BraTS-GLI-00042-000-seg.nii.gz", case["seg_bytes"])
        zf.writestr("BraTS-GLI-00042-000/BraTS-GLI-00042-000-t1c.nii.gz", case["img_bytes"])
    return load(buf.getvalue(), "BraTS-GLI-00042-000.zip", grid=64)


def _max_error_mm(t_found: np.ndarray, t_true: np.ndarray) -> float:
    """Largest displacement between two maps over the template's brain voxels."""
    _, _, t1 = _templates_1mm()
    pts = np.argwhere(t1 > 0)[::97].astype(float)
    w = pts @ MNI_AFFINE[:3, :3].T + MNI_AFFINE[:3, 3]
    d = w @ (t_found[:3, :3] - t_true[:3, :3]).T + (t_found[:3, 3] - t_true[:3, 3])
    return float(np.linalg.norm(d, axis=1).max())


def test_registration_recovers_a_known_affine_within_1mm(loaded, case):
    reg = loaded.meta["registration"]
    assert reg["passed"] and reg["dice_brain"] > 0.9
    assert 1.2 < reg["nmi"] <= 2.0
    err = _max_error_mm(np.asarray(reg["to_patient"]), case["t"])
    assert err < 1.0, f"registration error {err:.2f} mm over the brain"


def test_segmentation_reaches_the_atlas_like_the_mni_labels(loaded):
    """The warped patient labels give the same working-grid masks as the MNI-space labels."""
    from workbench.datasets.tumor import problem_from_masks
    from workbench.io.tumor_nifti import labels_to_masks
    from workbench.physics.tumor.metrics import dice

    wt, tc, preset = labels_to_masks(mni_labels().astype(np.int64), "auto", "mni")
    assert preset == "brats2023"
    ref = problem_from_masks(wt, tc, MNI_AFFINE, wt.shape, 64)
    assert dice(loaded.wt > 0, ref.wt > 0) > 0.9
    assert dice(loaded.tc > 0, ref.tc > 0) > 0.85
    assert loaded.meta["registration"]["modality"] == "T1-contrast"
    assert np.allclose(loaded.meta["patient_affine"], PATIENT_AFFINE)


def test_results_go_back_to_the_patient_grid_and_affine(loaded, case):
    """An atlas-grid result equal to the observed WT, exported, overlaps the input WT and carries
    the patient's own affine; the MNI seed maps to the patient voxel of the same anatomy."""
    from workbench.physics.tumor.metrics import dice

    u = loaded.wt.astype(np.float32)
    out, aff = to_input_space(u, loaded)
    assert out.shape == PATIENT_SHAPE
    assert np.allclose(aff, PATIENT_AFFINE)
    assert dice(out >= 0.5, case["labels"] > 0) > 0.8
    reg = loaded.meta["registration"]
    _, vox = R.point_to_patient([-26.0, 10.0, 22.0], reg["to_patient"], PATIENT_AFFINE)
    lab = case["labels"][tuple(np.rint(vox).astype(int))]
    assert lab == 1  # the centre of the planted tumour is necrotic core in the patient's labels


def test_transfers_are_inverse_of_each_other():
    rng = np.random.default_rng(0)
    t = known_map()
    x = rng.uniform(-60, 60, size=3)
    p, v = R.point_to_patient(x, t, PATIENT_AFFINE)
    view = R.mni_view_affine(t, PATIENT_AFFINE)
    assert np.allclose(view @ np.r_[v, 1.0], np.r_[x, 1.0])
    assert np.allclose(PATIENT_AFFINE @ np.r_[v, 1.0], np.r_[p, 1.0])


def test_downsample_keeps_world_coordinates():
    vol = np.zeros((40, 40, 40), np.float32)
    vol[20:22, 10:12, 30:32] = 1.0
    aff = np.array([[-1.0, 0, 0, 5], [0, 1.0, 0, -3], [0, 0, 1.0, 2], [0, 0, 0, 1]])
    v2, a2 = R.downsample(vol, aff, 2.0)
    assert v2.shape == (20, 20, 20)
    c1 = aff @ np.r_[np.argwhere(vol > 0).mean(0), 1]
    c2 = a2 @ np.r_[np.argwhere(v2 > 0).mean(0), 1]
    assert np.allclose(c1, c2)


@pytest.mark.parametrize(
    "names, seg, img, modality",
    [
        (
            ["BraTS-GLI-00000-000-seg.nii.gz", "BraTS-GLI-00000-000-t2f.nii.gz",
             "BraTS-GLI-00000-000-t1c.nii.gz", "BraTS-GLI-00000-000-t1n.nii.gz"],
            "BraTS-GLI-00000-000-seg.nii.gz", "BraTS-GLI-00000-000-t1n.nii.gz", "T1",
        ),
        (
            ["BraTS2021_00001_flair.nii.gz", "BraTS2021_00001_seg.nii.gz",
             "BraTS2021_00001_t1ce.nii.gz"],
            "BraTS2021_00001_seg.nii.gz", "BraTS2021_00001_t1ce.nii.gz", "T1-contrast",
        ),
        (["p_seg.nii", "p_flair.nii", "notes.txt"], "p_seg.nii", "p_flair.nii", "FLAIR"),
    ],
)  # fmt: skip
def test_brats_file_names_are_recognised(names, seg, img, modality):
    from workbench.datasets.tumor import pick_case_files

    assert pick_case_files(names) == (seg, img, modality)


@pytest.mark.parametrize(
    "names, words",
    [
        (["a_t1.nii.gz", "b_t2.nii.gz"], "segmentation"),
        (["a_seg.nii.gz", "b_seg.nii.gz", "a_t1.nii.gz"], "exactly one"),
        (["a_seg.nii.gz", "a_dwi.nii.gz"], "no anatomical image"),
    ],
)
def test_incomplete_cases_are_refused_in_one_line(names, words):
    from workbench.datasets.tumor import pick_case_files

    with pytest.raises(InputError) as e:
        pick_case_files(names)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_failed_registration_is_reported_not_used(case, monkeypatch):
    """The loader refuses a registration below the quality threshold (here forced by a fake
    result; the real numbers are checked above) with one line that names the Dice."""
    import dataclasses

    from workbench.datasets.tumor import load_patient

    real = R.register_to_mni

    def poor(image, affine, **kw):
        r = real(image, affine, level_iters=(2,), **kw)
        return dataclasses.replace(r, dice_brain=0.42, passed=False)

    monkeypatch.setattr(R, "register_to_mni", poor)
    with pytest.raises(InputError) as e:
        load_patient(case["seg_bytes"], "p_seg.nii.gz", case["img_bytes"], "p_t1.nii.gz")
    assert "quality check" in str(e.value) and "0.42" in str(e.value)


def test_zip_without_nifti_is_refused():
    from workbench.datasets.tumor import load

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", b"nothing here")
    with pytest.raises(InputError):
        load(buf.getvalue(), "case.zip")
    with pytest.raises(InputError):
        load(b"PK\x03\x04garbage", "case.zip")


def test_patient_views_and_seed(loaded, case):
    """The overlay figure carries the quality numbers; the patient-space view of a result equal
    to the observed masks lands on the input tumour, and the seed cross on its planted centre."""
    from workbench.result import Result
    from workbench.viz import tumor as V

    fig = V.registration_figure(loaded)
    assert fig is not None and "Dice" in fig.layout.title.text and "passed" in fig.layout.title.text
    r = Result(
        output=loaded.wt.astype(np.float32),
        kind="volume",
        extras={"seed_mm": [-26.0, 10.0, 22.0]},
    )
    ps = V.patient_space(loaded, r)
    assert ps["density"].shape == PATIENT_SHAPE
    from workbench.physics.tumor.metrics import dice

    assert dice(ps["pred_wt"], case["labels"] > 0) > 0.8
    assert case["labels"][tuple(np.rint(ps["seed_voxel"]).astype(int))] == 1
    fig2 = V.patient_figure(ps, case["image"])
    assert len(fig2.data) >= 6
    assert V.registration_figure(type(loaded)(**{**_fields(loaded), "meta": {}})) is None


def _fields(p):
    import dataclasses

    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


@pytest.mark.slow
def test_cli_reads_a_case_folder(case, tmp_path):
    """``--input FOLDER`` with BraTS 2021 names: the registration runs and the lookup solves
    (exit 0); a folder without an anatomical image exits 2 with one line and stores nothing."""
    import json
    import os
    import subprocess
    import sys

    d = tmp_path / "BraTS2021_00042"
    d.mkdir()
    (d / "BraTS2021_00042_seg.nii.gz").write_bytes(case["seg_bytes"])
    (d / "BraTS2021_00042_flair.nii.gz").write_bytes(case["img_bytes"])
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "workbench.cli", "solve", "tumor", "--solver", "db_lookup"]
    run = subprocess.run(
        [*cmd, "--input", str(d), "--json", "--no-figure"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] in ("converged", "max_iter") and out["metrics"]["dice_edema"] > 0.5
    exp = tmp_path / "export"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "tumor",
            "export",
            out["run_id"],
            "--out",
            str(exp),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    import nibabel as nib

    img = nib.load(str(exp / "pred_wt.nii.gz"))
    assert img.shape == PATIENT_SHAPE and np.allclose(img.affine, PATIENT_AFFINE)
    seed = json.loads((exp / "seed.json").read_text())
    assert {"seed_mni_mm", "seed_patient_mm", "seed_patient_voxel"} <= set(seed)
    bad = tmp_path / "no_image"
    bad.mkdir()
    (bad / "x_seg.nii.gz").write_bytes(case["seg_bytes"])
    run = subprocess.run([*cmd, "--input", str(bad)], capture_output=True, text=True, env=env)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "anatomical image" in run.stderr


def test_page_patient_space_upload(loaded, case, tmp_path, monkeypatch):
    """The page's two uploads reach the loader; the registration overlay and its quality numbers
    are shown, and a stored lookup is shown on the patient's grid. (The loader is replaced by the
    registered fixture: the registration itself is tested above.)"""
    import dataclasses
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    import workbench.datasets.tumor as dt
    from workbench import registry
    from workbench.store import RunStore

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    calls = []

    def fake(seg, seg_name, img, img_name, **opts):
        calls.append((seg_name, img_name, len(seg), len(img)))
        return loaded

    monkeypatch.setattr(dt, "load_patient", fake)
    spec = registry.get_solver("tumor", "db_lookup")
    params = spec.params()
    RunStore(str(tmp_path)).save(
        loaded, "db_lookup", dataclasses.asdict(params), spec.solve(loaded, params)
    )
    page = Path(__file__).resolve().parents[2] / "app_pages" / "tumor.py"
    at = AppTest.from_file(str(page), default_timeout=240)
    at.run()
    at.radio(key="wb.tumor.src").set_value("Patient space (segmentation + image)").run()
    at.file_uploader(key="wb.tumor.pseg").upload(
        "p_seg.nii.gz", case["seg_bytes"], "application/gzip"
    ).run()
    at.file_uploader(key="wb.tumor.pimg").upload(
        "p_t1c.nii.gz", case["img_bytes"], "application/gzip"
    ).run()
    assert not at.exception, at.exception
    assert calls and calls[0][:2] == ("p_seg.nii.gz", "p_t1c.nii.gz")
    labels = [m.label for m in at.metric]
    assert "brain-mask Dice" in labels and "NMI" in labels
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("registration of" in s for s in specs)
    assert any("in patient space" in m.value for m in at.markdown)
