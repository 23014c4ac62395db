"""NIfTI magnitude volumes for MRI: read (simulate multi-coil k-space from them) and write.

A NIfTI upload is a magnitude image, not k-space: its axial slices (at most ``MAX_SLICES``,
evenly spaced through the middle of the volume) are normalised to max 1 and k-space is simulated
with the bundled protocol (smooth random phase, 8 birdcage coils, noise σ_rel·max|x|).
Reconstructions are exported with a diagonal affine (1 mm voxels unless given) and the slice axis
last, as NIfTI expects.
"""

from __future__ import annotations

import io

import numpy as np

from workbench.errors import InputError

MAX_SLICES = 8
MAX_SIZE = 512


def read_nifti(data: bytes, filename: str = "volume.nii") -> tuple[np.ndarray, np.ndarray]:
    """Volume (X, Y, Z) float64 and affine from NIfTI bytes (.nii or .nii.gz)."""
    from workbench.io.limits import open_nifti

    img = open_nifti(data, filename)
    vol = np.asarray(img.dataobj)
    if vol.dtype.kind not in "biuf":
        raise InputError(
            f"{filename}: expected a real-valued magnitude volume, got dtype {vol.dtype}"
        )
    vol = vol.astype(np.float64)
    if vol.ndim == 4:
        vol = vol[..., 0]
    if vol.ndim == 2:
        vol = vol[..., None]
    if vol.ndim != 3:
        raise InputError(f"{filename}: expected a 2-D, 3-D or 4-D volume, got shape {vol.shape}")
    if not np.isfinite(vol).all():
        raise InputError(f"{filename} contains NaN or infinite values")
    if vol.max() <= 0:
        raise InputError(f"{filename} is empty (no positive voxels)")
    return vol, np.asarray(img.affine)


def problem_from_nifti(data: bytes, filename: str, options: dict):
    """Simulate k-space from the central axial slices of a magnitude volume."""
    vol, _ = read_nifti(data, filename)
    return problem_from_volume(vol, filename, options)


def problem_from_volume(
    vol: np.ndarray, filename: str, options: dict, kind: str = "magnitude volume"
):
    """Simulate k-space from the central axial slices of a validated (X, Y, Z) magnitude volume
    (NIfTI orientation: ``rot90(vol[:, :, z])`` is the displayed slice)."""
    from workbench.physics.mri.acquisition import (
        acquisition_options,
        resize_image,
        simulate_problem,
    )

    nx, ny, nz = vol.shape
    idx = (
        np.unique(np.linspace(nz * 0.3, nz * 0.7, min(MAX_SLICES, nz)).astype(int))
        if nz > 1
        else np.array([0])
    )
    n = options.get("size") or max(nx, ny)
    n = int(min(n, MAX_SIZE))
    n += n % 2
    imgs = []
    for z in idx:
        sl = np.rot90(vol[:, :, z])
        h, w = sl.shape
        s = max(h, w)
        sq = np.zeros((s, s))
        sq[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = np.clip(sl, 0, None)
        im = resize_image(sq, n) if s != n else sq.astype(np.float32)
        imgs.append(im / max(float(im.max()), 1e-12))
    return simulate_problem(
        np.stack(imgs).astype(np.float32),
        name=filename,
        slice_seeds=[8000 + int(z) for z in idx],
        sigma_rel=options.get("sigma_rel", 0.005),
        source=f"{filename} ({kind}; k-space simulated, slices {idx.tolist()})",
        **acquisition_options(options),
    )


def nifti_bytes(
    volume: np.ndarray,
    voxel: tuple[float, float, float] = (1.0, 1.0, 1.0),
    affine: np.ndarray | None = None,
) -> bytes:
    """Encode a reconstruction (slices, H, W) as a NIfTI-1 file (X=W, Y=H flipped up, Z=slices)."""
    import nibabel

    v = np.asarray(volume, np.float32)
    if v.ndim == 2:
        v = v[None]
    arr = np.ascontiguousarray(np.transpose(v[:, ::-1, :], (2, 1, 0)))  # (W, H, S), row 0 = top
    if affine is None:
        affine = np.diag([voxel[0], voxel[1], voxel[2], 1.0])
        affine[:3, 3] = (
            -np.array(arr.shape) * np.array(voxel) / 2.0
        )  # centre the volume at the origin
    img = nibabel.Nifti1Image(arr, affine)
    img.header.set_xyzt_units("mm")
    buf = io.BytesIO()
    file_map = nibabel.Nifti1Image.make_file_map({"image": buf, "header": buf})
    img.to_file_map(file_map)
    return buf.getvalue()
