"""NIfTI segmentations in, NIfTI densities and masks out (nibabel), for the tumour domain.

A segmentation is a 3-D integer label image already registered to MNI152 2009; label presets map
labels to necrotic/non-enhancing core, oedema and enhancing tumour. WT = all tumour labels,
TC = necrotic + enhancing. Everything is validated and errors are :class:`InputError`.
"""

from __future__ import annotations

import gzip
import io

import numpy as np

from workbench.errors import InputError

#: preset -> (necrotic, oedema, enhancing) labels
PRESETS: dict[str, tuple[int, int, int]] = {
    "brats2021": (1, 2, 4),
    "brats2023": (1, 2, 3),
    "gliodil": (4, 3, 1),
}
LABEL_CHOICES = ("auto", "brats2021", "brats2023", "gliodil", "binary_wt")


def read_nifti(data: bytes, filename: str = "file.nii"):
    """Parse NIfTI-1/2 bytes (optionally gzipped) -> nibabel image; InputError when invalid."""
    from workbench.io.limits import open_nifti

    return open_nifti(data, filename)


def _affine(img, filename: str) -> np.ndarray:
    a = np.asarray(img.affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise InputError(f"{filename} has an invalid (singular or non-finite) affine")
    return a


def _volume(img, filename: str) -> np.ndarray:
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(f"{filename} must be a 3-D image, got shape {tuple(img.shape)}")
    try:
        v = np.asarray(img.dataobj).reshape(shape)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{filename}: cannot read the voxel data ({type(exc).__name__})") from None
    if v.dtype.kind not in "biuf":
        raise InputError(f"{filename} must hold numeric labels, got dtype {v.dtype}")
    if v.dtype.kind == "f":
        if not np.all(np.isfinite(v)):
            raise InputError(f"{filename} contains NaN or infinite values")
        if not np.all(v == np.round(v)):
            raise InputError(f"{filename} holds non-integer values: expected a label image")
    if tuple(shape) == (240, 240, 155):
        raise InputError(f"{filename} is 240x240x155, BraTS' SRI24 space: {REGISTER_HINT}")
    return v.astype(np.int64)


#: What to do with a segmentation that is not on an MNI152 2009 grid (issue 19's patient-space
#: path takes the segmentation with its anatomical image and registers them).
REGISTER_HINT = "register it to MNI152 2009, or upload it with its anatomical image"


def _labels_txt(vals) -> str:
    """A label list short enough for a one-line message."""
    v = sorted(int(x) for x in vals)
    if len(v) <= 8:
        return str(v)
    return f"[{', '.join(map(str, v[:6]))}, ..., {v[-1]}] ({len(v)} labels)"


def check_atlas_grid(affine: np.ndarray, shape, filename: str) -> None:
    """Refuse a grid that no MNI152 2009 resampling produces: an oblique or anisotropic one.

    A segmentation registered to the atlas is resampled onto an axis-aligned grid of isotropic
    voxels (the atlas's 1 mm one, or a coarser copy): the columns of the affine's 3x3 part are
    then a signed permutation of the axes times one voxel size. A rotated affine (more than
    0.5 degree from every axis) is the scanner's native space; voxels whose sizes differ by more
    than a factor 2 are an acquisition grid (thick slices). Both are refused with
    :data:`REGISTER_HINT`.
    """
    a = np.asarray(affine, np.float64)[:3, :3]
    size = np.linalg.norm(a, axis=0)
    cosines = np.abs(a) / size[None, :]
    angle = float(np.degrees(np.arccos(np.clip(cosines.max(axis=0), -1.0, 1.0))).max())
    if angle > 0.5:
        raise InputError(
            f"{filename}: its grid is oblique ({angle:.1f} degrees from the MNI axes), the "
            f"scanner's native space, not MNI152 2009: {REGISTER_HINT}"
        )
    if size.max() > 2.0 * size.min():
        vox = " x ".join(f"{v:.2g}" for v in size)
        raise InputError(
            f"{filename}: voxels of {vox} mm are an acquisition grid, not an MNI152 2009 one: "
            f"{REGISTER_HINT}"
        )


def labels_to_masks(
    lab: np.ndarray, labels: str = "auto", filename: str = "segmentation"
) -> tuple[np.ndarray, np.ndarray, str]:
    """Label image -> (WT, TC, preset used). Raises InputError on unknown labels or empty WT."""
    vals = set(np.unique(lab).tolist()) - {0}
    if not vals:
        raise InputError(f"{filename} is empty: no tumour labels")
    if labels == "auto":
        if vals <= {1}:
            labels = "binary_wt"
        elif vals <= {1, 2, 4}:
            labels = "brats2021"
        elif vals <= {1, 2, 3}:
            labels = "brats2023"
        else:
            raise InputError(
                f"{filename}: labels {_labels_txt(vals)} match no preset (BraTS 1/2/4 or 1/2/3); choose the labels option"
            )
    if labels == "binary_wt":
        if not vals <= {1}:
            raise InputError(
                f"{filename}: a binary mask holds only 0 and 1, got {_labels_txt(vals | {0})}"
            )
        wt = lab == 1
        return wt, np.zeros_like(wt), labels
    if labels not in PRESETS:
        raise InputError(
            f"unknown label preset {labels!r}; choose one of {', '.join(LABEL_CHOICES)}"
        )
    nec, oed, enh = PRESETS[labels]
    bad = vals - {nec, oed, enh}
    if bad:
        raise InputError(
            f"{filename}: labels {_labels_txt(bad)} are not in the {labels} preset ({nec}, {oed}, {enh})"
        )
    tc = (lab == nec) | (lab == enh)
    wt = tc | (lab == oed)
    return wt, tc, labels


def read_segmentation(data: bytes, filename: str, labels: str = "auto") -> dict:
    """NIfTI label image -> {"wt", "tc", "affine", "shape", "preset"}."""
    img = read_nifti(data, filename)
    vol = _volume(img, filename)
    aff = _affine(img, filename)
    wt, tc, preset = labels_to_masks(vol, labels, filename)
    return {
        "wt": wt,
        "tc": tc,
        "affine": aff,
        "shape": tuple(int(s) for s in vol.shape),
        "preset": preset,
    }


def read_binary_pair(
    wt_data: bytes, wt_name: str, tc_data: bytes | None, tc_name: str = "tc.nii"
) -> dict:
    """Two binary NIfTI masks (FLAIR abnormality = WT, T1-Gd abnormality = TC) on one grid."""
    a = read_nifti(wt_data, wt_name)
    vw = _volume(a, wt_name)
    aff = _affine(a, wt_name)
    wt, _, _ = labels_to_masks(vw, "binary_wt", wt_name)
    tc = np.zeros_like(wt)
    if tc_data is not None:
        b = read_nifti(tc_data, tc_name)
        vt = _volume(b, tc_name)
        if vt.shape != vw.shape or not np.allclose(_affine(b, tc_name), aff, atol=1e-4):
            raise InputError(f"{tc_name} and {wt_name} must share the grid and the affine")
        if set(np.unique(vt).tolist()) - {0, 1}:
            raise InputError(f"{tc_name}: a binary mask holds only 0 and 1")
        tc = vt == 1
    return {
        "wt": wt | tc,
        "tc": tc,
        "affine": aff,
        "shape": tuple(int(s) for s in vw.shape),
        "preset": "binary_pair",
    }


def nifti_bytes(vol: np.ndarray, affine: np.ndarray, dtype=np.float32, gz: bool = True) -> bytes:
    """A 3-D array as NIfTI-1 bytes with the given affine (sform and qform set)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(vol).astype(dtype), np.asarray(affine, dtype=np.float64))
    img.set_sform(np.asarray(affine, dtype=np.float64), code=1)
    img.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=6) if gz else raw


def segmentation_bytes(
    wt: np.ndarray, tc: np.ndarray, affine: np.ndarray, preset: str = "brats2021"
) -> bytes:
    """WT/TC masks as a label image (TC -> enhancing label, WT \\ TC -> oedema)."""
    nec, oed, enh = PRESETS[preset]
    lab = np.zeros(np.shape(wt), np.uint8)
    lab[np.asarray(wt, bool)] = oed
    lab[np.asarray(tc, bool)] = enh
    return nifti_bytes(lab, affine, dtype=np.uint8)


def to_input_space(vol: np.ndarray, problem, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Resample a working-grid volume to the uploaded file's grid -> (volume, input affine)."""
    from workbench.physics.tumor.atlas import resample_linear

    aff = problem.input_affine
    shape = problem.meta.get("input_shape")
    if aff is None or shape is None:
        return np.asarray(vol), np.asarray(problem.affine)
    out = resample_linear(vol, problem.affine, tuple(shape), aff)
    # a case registered from patient space: ``aff`` is the patient grid seen from MNI space, the
    # file gets the patient's own affine
    return out, np.asarray(problem.meta.get("patient_affine", aff), dtype=np.float64)


def export_nifti(problem, result, space: str = "input") -> dict[str, bytes]:
    """Predicted density and masks (at the result's thresholds) as NIfTI files.

    ``space="input"`` resamples to the uploaded file's grid and affine; ``"atlas"`` keeps the
    working grid and its MNI affine."""
    u = np.asarray(result.output, dtype=np.float32)
    th_wt = float(result.meta.get("theta_wt", problem.theta_wt))
    th_tc = float(result.meta.get("theta_tc", problem.theta_tc))
    if space == "input":
        u_out, aff = to_input_space(u, problem)
    else:
        u_out, aff = u, np.asarray(problem.affine)
    return {
        "concentration.nii.gz": nifti_bytes(u_out, aff, np.float32),
        "pred_wt.nii.gz": nifti_bytes(u_out >= th_wt, aff, np.uint8),
        "pred_tc.nii.gz": nifti_bytes(u_out >= th_tc, aff, np.uint8),
        "pred_segmentation.nii.gz": segmentation_bytes(u_out >= th_wt, u_out >= th_tc, aff),
    }


def params_json(result) -> bytes:
    import json

    keys = [k for k in result.metrics]
    out = {k: result.metrics[k] for k in keys}
    for k in ("estimate_top1", "estimate_topk", "topk", "seed_mm", "db"):
        if k in result.extras:
            out[k] = result.extras[k]
    out["meta"] = {k: v for k, v in result.meta.items() if isinstance(v, (str, int, float, bool))}
    return json.dumps(out, indent=2, default=float).encode()


def params_csv(result) -> bytes:
    buf = io.StringIO()
    buf.write("name,value\n")
    for k, v in result.metrics.items():
        buf.write(f"{k},{v}\n")
    return buf.getvalue().encode()
