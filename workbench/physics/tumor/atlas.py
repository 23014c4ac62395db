"""MNI152 2009 grey/white-matter atlas on isotropic working grids (offline, from nilearn's wheel).

The 1 mm templates (197 x 233 x 189) are padded symmetrically to a 233^3 cube and resampled
linearly (after a light anti-alias blur) to n^3 cells of size h = 233/n mm. Cell centres of the
working grid are mapped to MNI world coordinates (mm) by :attr:`Atlas.affine`.

Building a grid from the templates takes about 1.3 s on one core (reading three 1 mm volumes,
blurring and resampling them), longer than a whole database lookup; every process paid it again.
The maps of each grid are therefore kept in an on-disk cache, ``WORKBENCH_HOME/cache/tumor``
(:func:`atlas_cache_path`): one uncompressed ``.npz`` per grid, read back in milliseconds with
``allow_pickle=False``. Its name carries a key, the sha256 of the recipe version and of the
three template files themselves, so other templates (another nilearn) or another recipe never
find a stale file; inside, the key again and a sha256 of the arrays' bytes, checked on every
read: a truncated, corrupted or foreign file is ignored and rebuilt, never trusted. Files are
written atomically (temporary file + rename), and a cache folder that cannot be written only
costs the rebuild. The arrays are exactly the ones built (float32, bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ATLAS_FILES = (
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
)
T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
ATLAS_NOTICE = (
    "MNI ICBM152 2009 templates. Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging "
    "Centre, Montreal Neurological Institute, McGill University. Permission to use, copy, modify, "
    "and distribute this software and its documentation for any purpose and without fee is hereby "
    "granted, provided that the above copyright notice appear in all copies. The authors and "
    "McGill University make no representations about the suitability of this software for any "
    "purpose. It is provided 'as is' without express or implied warranty."
)
CUBE = 233
THETA_TISSUE = 0.1


@dataclass(frozen=True, eq=False)
class Atlas:
    """Tissue maps on an n^3 grid.

    Attributes
    ----------
    n : int
        Cells per axis.
    h : float
        Cell size (mm).
    affine : ndarray (4, 4)
        Voxel index (i, j, k) -> MNI world (mm) of the cell centre.
    gm, wm : ndarray (n, n, n) float32
        Tissue probabilities in [0, 1], gm + wm <= 1.
    t1 : ndarray (n, n, n) float32 or None
        The T1 template (display only), scaled to [0, 1].
    """

    n: int
    h: float
    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    t1: np.ndarray | None = None
    theta_tissue: float = THETA_TISSUE

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n, self.n, self.n)

    @property
    def tissue(self) -> np.ndarray:
        """Cells that carry tumour (p_GM + p_WM >= theta_tissue)."""
        return (self.gm + self.wm) >= self.theta_tissue

    @property
    def tissue_index(self) -> np.ndarray:
        return np.flatnonzero(self.tissue.ravel()).astype(np.int32)

    def diffusivity(self, R: float = 10.0) -> np.ndarray:
        """Cell diffusivity for D_w = 1: p_WM + p_GM / R on tissue, 0 elsewhere (float32)."""
        d = (self.wm + self.gm / float(R)).astype(np.float32)
        d[~self.tissue] = 0.0
        return d

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """World mm (..., 3) -> continuous voxel index (..., 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def grid_affine(n: int) -> np.ndarray:
    """Affine of the n^3 working grid (cell centres) in MNI mm."""
    base = _padded_affine()
    h = CUBE / n
    zoom = np.diag([h, h, h, 1.0])
    zoom[:3, 3] = (h - 1.0) / 2.0
    return base @ zoom


def _padded_affine() -> np.ndarray:
    a = np.array(
        [[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]]
    )  # nilearn's MNI152 2009 1 mm affine, checked at load time
    shape = (197, 233, 189)
    pad = np.array([(CUBE - s) // 2 for s in shape], dtype=np.float64)
    a = a.copy()
    a[:3, 3] -= pad
    return a


def _nilearn_data_dir():
    """nilearn's bundled data folder, found without importing nilearn (which pulls scikit-learn)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nilearn is not installed: the MNI152 templates ship inside it")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@lru_cache(maxsize=2)
def _templates_1mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM (each divided by its maximum, as nilearn's loaders do) and T1, on the 1 mm grid.

    Reads the files that ``nilearn.datasets.load_mni152_{gm,wm}_template`` read, directly
    (:mod:`workbench.physics.nifti`, nibabel as the fallback): no network, no scikit-learn."""
    from workbench.physics.nifti import read_nifti_gz

    d = _nilearn_data_dir()
    ref = np.array([[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]])
    arrays = []
    for f in (*ATLAS_FILES, T1_FILE):
        got = read_nifti_gz(d / f)  # without nibabel's import (0.3 s); the same array
        if got is None or got[1] is None:
            import nibabel as nib

            im = nib.load(str(d / f))
            got = (_as_float32(im), im.affine)
        data, affine = got
        if data.shape != (197, 233, 189) or not np.allclose(affine, ref):
            raise RuntimeError("unexpected MNI152 template geometry in this nilearn version")
        arrays.append(data.astype(np.float32))
    gm, wm, t1 = arrays
    gm /= max(float(gm.max()), 1e-6)
    wm /= max(float(wm.max()), 1e-6)
    gm, wm = np.clip(gm, 0, 1), np.clip(wm, 0, 1)
    s = gm + wm
    over = s > 1
    gm[over] /= s[over]
    wm[over] /= s[over]
    t1 /= max(float(t1.max()), 1e-6)
    return gm, wm, t1


def _as_float32(img) -> np.ndarray:
    """A NIfTI image's data as float32. The templates are uint8 with unit scaling: their integers
    are exact in float32, so reading them raw gives ``get_fdata()``'s values without its float64
    copy (3-4 times faster, most of a tumour sample's build)."""
    proxy = img.dataobj
    if getattr(proxy, "slope", None) == 1.0 and getattr(proxy, "inter", None) == 0.0:
        raw = np.asanyarray(proxy)
        if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2:
            return raw.astype(np.float32)
    return np.asarray(img.get_fdata(), dtype=np.float32)


def _pad_cube(a: np.ndarray) -> np.ndarray:
    pads = [((CUBE - s) // 2, CUBE - s - (CUBE - s) // 2) for s in a.shape]
    return np.pad(a, pads)


def _resample_cube(a: np.ndarray, n: int) -> np.ndarray:
    from scipy import ndimage

    h = CUBE / n
    if h > 1.0:
        a = ndimage.gaussian_filter(a, sigma=0.4 * h, mode="constant")
    c = (np.arange(n) + 0.5) * h - 0.5
    out = ndimage.map_coordinates(
        a, np.meshgrid(c, c, c, indexing="ij"), order=1, mode="constant", cval=0.0
    )
    return out.astype(np.float32)


@lru_cache(maxsize=4)
def load_atlas(n: int = 64, with_t1: bool = True) -> Atlas:
    """The atlas on an n^3 grid (cached per process and on disk, see the module docstring).

    Needs no network. The arrays are shared by every caller in the process and read-only."""
    if not 8 <= int(n) <= 256:
        raise ValueError(f"grid n must be in [8, 256], got {n}")
    n = int(n)
    gm, wm, t1 = _grid_maps(n)
    return Atlas(n=n, h=CUBE / n, affine=grid_affine(n), gm=gm, wm=wm, t1=t1 if with_t1 else None)


def build_grid_maps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM and T1 on the n^3 grid, built from the 1 mm templates (float32, no cache).

    Each map is blurred with a Gaussian of sigma = 0.4 h (h = 233/n mm, when h > 1) and sampled
    trilinearly at the cell centres; GM and WM are then clipped to [0, 1] and rescaled where
    p_GM + p_WM > 1 so that they sum to at most 1."""
    gm1, wm1, t11 = _templates_1mm()
    gm = np.clip(_resample_cube(_pad_cube(gm1), n), 0, 1)
    wm = np.clip(_resample_cube(_pad_cube(wm1), n), 0, 1)
    s = gm + wm
    over = s > 1
    gm[over] /= s[over]
    wm[over] /= s[over]
    t1 = _resample_cube(_pad_cube(t11), n)
    return gm, wm, t1


# ------------------------------------------------------------------------------------------
# The on-disk cache of the grid maps
# ------------------------------------------------------------------------------------------

#: Version of the recipe :func:`build_grid_maps` follows; bump it whenever the maps it returns
#: change (blur, sampling, normalisation), so that no cache built by the old recipe is read.
ATLAS_RECIPE = 1
_MAPS = ("gm", "wm", "t1")


@lru_cache(maxsize=4)
def _grid_maps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's maps from the on-disk cache, or built (and cached) on a miss; read-only."""
    try:
        key = atlas_cache_key(n)
        path = atlas_cache_path(n, key)
    except (OSError, RuntimeError, KeyError):
        # templates unreadable (the build says why) or no home folder: build without a cache
        key, path = None, None
    maps = read_atlas_cache(path, n, key) if path else None
    if maps is None:
        maps = build_grid_maps(n)
        if path:
            write_atlas_cache(path, n, key, maps)
    for a in maps:
        a.flags.writeable = False  # shared by every Atlas of this grid in the process
    return maps


def atlas_cache_key(n: int) -> str:
    """sha256 (hex) of the recipe version, the grid and the bytes of the three template files."""
    d = _nilearn_data_dir()
    h = hashlib.sha256(f"workbench-atlas recipe {ATLAS_RECIPE} n {int(n)}\n".encode())
    for f in (*ATLAS_FILES, T1_FILE):
        h.update(hashlib.sha256((d / f).read_bytes()).digest())
    return h.hexdigest()


def atlas_cache_path(n: int, key: str) -> Path:
    """Cache file of the n^3 maps under ``WORKBENCH_HOME/cache/tumor`` (the key in its name)."""
    from workbench.store import default_home

    return default_home() / "cache" / "tumor" / f"atlas{int(n)}_{key[:16]}.npz"


def _payload_digest(maps) -> str:
    h = hashlib.sha256()
    for a in maps:
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return h.hexdigest()


def read_atlas_cache(path: Path, n: int, key: str):
    """``(gm, wm, t1)`` from a cache file, or ``None`` when it is missing or not exactly the one
    this key and grid would write: unreadable, truncated, another key, another shape or dtype, or
    arrays whose sha256 differs from the one stored beside them."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if set(z.files) != {*_MAPS, "meta"}:
                return None
            meta = json.loads(str(z["meta"]))
            maps = tuple(z[k] for k in _MAPS)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # missing, unreadable or damaged (JSON errors are ValueErrors)
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("n") != int(n):
        return None
    if any(a.shape != (n, n, n) or a.dtype != np.float32 for a in maps):
        return None
    if meta.get("sha256") != _payload_digest(maps):
        return None
    return maps


def write_atlas_cache(path: Path, n: int, key: str, maps) -> bool:
    """Write the maps atomically; ``False`` (and nothing written) where the folder is read-only."""
    from workbench.store import _atomic_write

    meta = {"key": key, "n": int(n), "recipe": ATLAS_RECIPE, "sha256": _payload_digest(maps)}
    arrays = dict(zip(_MAPS, maps, strict=True), meta=np.array(json.dumps(meta)))
    try:
        _atomic_write(Path(path), lambda fh: np.savez(fh, **arrays))
    except OSError:
        return False
    return True


def atlas_from_arrays(gm: np.ndarray, wm: np.ndarray, affine: np.ndarray) -> Atlas:
    n = int(gm.shape[0])
    return Atlas(
        n=n, h=float(affine[0, 0]), affine=np.asarray(affine, dtype=np.float64), gm=gm, wm=wm
    )


# ------------------------------------------------------------------------------------------
# Grid transfer helpers
# ------------------------------------------------------------------------------------------


def resample_occupancy(
    mask: np.ndarray,
    affine_in: np.ndarray,
    shape_out: tuple[int, int, int],
    affine_out: np.ndarray,
    sub: int = 3,
) -> np.ndarray:
    """Fraction of each output cell covered by ``mask`` (any affines), by sub-sampling.

    Each output cell is sampled at ``sub^3`` points; each point takes the nearest input voxel.
    """
    mask = np.asarray(mask)
    m = np.linalg.inv(np.asarray(affine_in, dtype=np.float64)) @ np.asarray(
        affine_out, dtype=np.float64
    )
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    acc = np.zeros(shape_out, dtype=np.float32)
    ii, jj, kk = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape_out], indexing="ij")
    src = mask.astype(bool)
    for a in offs:
        for b in offs:
            for c in offs:
                x = ii + a
                y = jj + b
                z = kk + c
                p = [
                    np.rint(m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3]).astype(np.int64)
                    for r in range(3)
                ]
                ok = np.ones(shape_out, dtype=bool)
                for r in range(3):
                    ok &= (p[r] >= 0) & (p[r] < src.shape[r])
                val = np.zeros(shape_out, dtype=bool)
                val[ok] = src[p[0][ok], p[1][ok], p[2][ok]]
                acc += val
    return acc / float(sub**3)


def resample_linear(
    vol: np.ndarray, affine_in: np.ndarray, shape_out: tuple[int, ...], affine_out: np.ndarray
) -> np.ndarray:
    """Trilinear resampling of ``vol`` onto another grid through the affines (0 outside)."""
    from scipy import ndimage

    m = np.linalg.inv(np.asarray(affine_in, dtype=np.float64)) @ np.asarray(
        affine_out, dtype=np.float64
    )
    return ndimage.affine_transform(
        np.asarray(vol, dtype=np.float32),
        m[:3, :3],
        offset=m[:3, 3],
        output_shape=tuple(shape_out),
        order=1,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)


def block_mean(vol: np.ndarray, f: int) -> np.ndarray:
    """Average over f^3 blocks of the last three axes (sizes must be divisible by f)."""
    if f == 1:
        return np.asarray(vol, dtype=np.float32)
    *lead, a, b, c = vol.shape
    v = np.asarray(vol, dtype=np.float32).reshape(*lead, a // f, f, b // f, f, c // f, f)
    return v.mean(axis=(-5, -3, -1))


def coarse_affine(affine: np.ndarray, f: int) -> np.ndarray:
    """Affine of the grid whose cells are f^3 blocks of the grid with ``affine``."""
    z = np.diag([float(f), float(f), float(f), 1.0])
    z[:3, 3] = (f - 1) / 2.0
    return np.asarray(affine, dtype=np.float64) @ z
