"""NPY/NPZ k-space for MRI.

``.npy``: complex k-space (slices, coils, H, W), (coils, H, W) or (H, W), taken as fully sampled.
``.npz``: ``kspace`` plus optional ``maps`` (same shape as kspace), ``mask`` ((W,), (H, W)) and
``reference`` ((slices, h, w) magnitude). With a ``mask`` the k-space is taken as measured.
Loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError


def _kspace(k: np.ndarray, filename: str) -> np.ndarray:
    if k.dtype.kind != "c":
        raise InputError(f"{filename}: k-space must be complex, got dtype {k.dtype}")
    if k.ndim == 2:
        k = k[None, None]
    elif k.ndim == 3:
        k = k[None]
    if k.ndim != 4:
        raise InputError(
            f"{filename}: k-space must be (slices, coils, H, W), (coils, H, W) or (H, W), got {k.shape}"
        )
    if not np.isfinite(k).all():
        raise InputError(f"{filename}: k-space contains NaN or infinite values")
    return np.ascontiguousarray(k, np.complex64)


def problem_from_npy(data: bytes, filename: str, options: dict):
    from workbench.io.limits import check_npz, load_npy_array, load_npz_arrays
    from workbench.physics.mri.acquisition import build_problem

    # read eagerly through the size-checked loaders: an NpzFile reads a member only when it is
    # indexed, out of reach of any error handling here
    if data.startswith(b"\x93NUMPY"):
        obj = load_npy_array(data, filename)
    elif data.startswith(b"PK\x03\x04"):
        obj = load_npz_arrays(data, filename, ("kspace", "maps", "mask", "reference"))
    else:
        raise InputError(f"{filename} is not a .npy/.npz file")
    maps = mask = ref = None
    if isinstance(obj, dict):
        if "kspace" not in obj:
            found = ", ".join(check_npz(data, filename, ())) or "nothing"
            raise InputError(f"{filename} has no 'kspace' array (found: {found})")
        k = _kspace(obj["kspace"], filename)
        if "maps" in obj:
            maps = np.asarray(obj["maps"])
            maps = maps.reshape((1,) * (4 - maps.ndim) + maps.shape)
            if (
                maps.shape[-3:] != k.shape[-3:]
                or maps.dtype.kind != "c"
                or not np.isfinite(maps).all()
            ):
                raise InputError(
                    f"{filename}: maps must be complex, finite and shaped like kspace {k.shape}"
                )
        if "mask" in obj:
            mask = np.asarray(obj["mask"], np.float32)
            if mask.ndim == 1:
                if mask.shape[0] != k.shape[-1]:
                    raise InputError(
                        f"{filename}: mask has {mask.shape[0]} columns but kspace has {k.shape[-1]}"
                    )
                mask = np.broadcast_to(mask[None], k.shape[-2:]).copy()
            if mask.shape != k.shape[-2:] or not np.isin(mask, (0, 1)).all() or mask.sum() == 0:
                raise InputError(
                    f"{filename}: mask must be binary (W,) or (H, W) matching kspace {k.shape[-2:]}"
                )
        if "reference" in obj:
            ref = np.asarray(obj["reference"], np.float32)
            ref = ref[None] if ref.ndim == 2 else ref
            if ref.ndim != 3 or ref.shape[0] != k.shape[0] or not np.isfinite(ref).all():
                raise InputError(f"{filename}: reference must be finite (slices, h, w)")
    else:
        k = _kspace(obj, filename)
    o = dict(options)
    src = o.get("maps", "auto")
    # maps="true" builds with ACS maps first, then swaps in the file's maps (end of function)
    if src == "true" and maps is None:
        raise InputError("true maps need a 'maps' array in the .npz")
    if mask is not None:
        p = build_problem(
            None,
            name=filename,
            measured=(k * mask[None, None], mask),
            maps=src if src != "true" else "acs_rss",
            reference=ref,
            reference_kind="file" if ref is not None else "",
            meta={"source": filename},
        )
    else:
        p = build_problem(
            k,
            name=filename,
            mask=o.get("mask", "equispaced"),
            acceleration=o.get("acceleration", 4.0),
            center_fraction=o.get("center_fraction", 0.08),
            seed=o.get("seed", 0),
            maps=src if src != "true" else "acs_rss",
            reference=ref,
            reference_kind="file" if ref is not None else "",
            meta={"source": filename},
        )
    if maps is not None and o.get("maps") == "true":
        import dataclasses

        from workbench.physics.mri.coils import normalize_maps

        S = normalize_maps(np.broadcast_to(maps, p.kspace.shape).astype(np.complex64))
        p = dataclasses.replace(p, maps=S, maps_source="file")
    return p
