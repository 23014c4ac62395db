"""A varied, offline, deterministic multi-coil MRI corpus for training and tuning (issue 12).

Every example is a function of ``(split, index)`` alone: no downloads, no global state. Content:

* **MNI152 2009 slices** (the template and its grey/white-matter maps ship inside nilearn) in all
  three orientations, at four contrasts: the template's own T1, and T2-like, PD-like and
  FLAIR-like images made by remapping the tissue classes (grey matter, white matter, CSF = the
  filled brain mask minus GM and WM, non-brain tissue from the T1) with jittered class
  intensities. Each slice gets a smooth multiplicative bias field ``exp(b(y, x))``, b a random
  2nd-order polynomial with max |b| ≤ 0.35.
* **Random-shape phantoms** in three families: additive ellipses, filled random polygons, and
  smooth textures (filtered noise through a random transfer curve) inside an elliptical support.
* **Augmentation:** rot90, flips, a rotation of up to ±20°, an intensity gamma in [0.7, 1.4],
  and a smooth random image phase (2nd-order polynomial, max |φ| up to π).
* **Coils:** a rotated birdcage (4–16 coils, radius 1.1–2.0 FOV) or Gaussian-profile surface
  coils (4–16, centres near an ellipse around the object, widths 0.3–0.9 FOV), each coil with a
  random smooth phase (always for surface coils, half the time for the birdcage); Σ|S|² = 1.
* **Acquisition:** σ_rel log-uniform in [0.001, 0.03] (σ = σ_rel·max|x|, max|x| = 1); sizes
  64²–192² in steps of 16; equispaced or random 1-D masks at R ∈ [3, 10] with centre fraction
  0.32/R clipped to [0.03, 0.12] (fastMRI's 0.08 at 4× and 0.04 at 8×).

**Splits** (:data:`SPLITS`) are disjoint at the level of voxels and phantom seeds. The one template
is cut along its inferior-superior axis (z) into slabs with 6-voxel gaps: training z ∈ [0, 112),
validation z ∈ [118, 126), test z ∈ [132, 189). The first shipped RecurrentVarNets (template
only) trained on axial slices z ∈ [30, 117] and were selected on z ∈ [118, 127]; their test
block z ∈ [128, 147] lies in this corpus's test slab, so a model warm-started from them has
never seen a test voxel either. Coronal and sagittal slices are
taken inside a slab only, so no voxel of a held-out slab is ever seen in training. Phantoms
draw their random shapes from split-specific seed streams. Real scans shipped in other packages
(dipy, nibabel, skimage) are evaluation-only and never appear here.

The MNI152 template is © McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill
University; redistributed inside nilearn under its permissive notice.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from workbench.errors import InputError

SPLITS = ("train", "val", "test")
CORPUS_VERSION = 2  # 2: slabs moved so that no test voxel was ever in the first models' training
SIZES = tuple(range(64, 193, 16))
ACCEL_RANGE = (3.0, 10.0)
SIGMA_REL_RANGE = (0.001, 0.03)
COIL_RANGE = (4, 16)
MASK_KINDS = ("equispaced", "random")
CONTRASTS = ("T1", "T2-like", "PD-like", "FLAIR-like")
ORIENTATIONS = ("axial", "coronal", "sagittal")
PHANTOM_FAMILIES = ("ellipses", "polygons", "textures")
# disjoint slabs of the template along z (voxel indices, half-open), with 6-voxel gaps
SLABS = {"train": ((0, 112),), "val": ((118, 126),), "test": ((132, 189),)}
P_MNI = 0.6  # share of template slices; the rest are phantoms
_SPLIT_ID = {"train": 11, "val": 23, "test": 37}
# class intensities (CSF, GM, WM, non-brain factor) of the remapped contrasts, jittered ±15%
_TISSUE = {
    "T2-like": (1.0, 0.55, 0.35, 0.6),
    "PD-like": (0.85, 0.8, 0.65, 0.7),
    "FLAIR-like": (0.1, 0.75, 0.55, 0.6),
}


def center_fraction_for(accel: float) -> float:
    """fastMRI's pairing (0.08 at 4×, 0.04 at 8×) continued as 0.32/R, clipped to [0.03, 0.12]."""
    return float(np.clip(0.32 / accel, 0.03, 0.12))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; available: {', '.join(SPLITS)}")


def _rng(split: str, index: int, stream: int = 0) -> np.random.Generator:
    if index < 0:
        raise InputError(f"index must be >= 0, got {index}")
    return np.random.default_rng([CORPUS_VERSION, _SPLIT_ID[split], int(index), stream])


# ------------------------------------------------------------------------------------------
# Template volumes and their remapped contrasts
# ------------------------------------------------------------------------------------------


def _nilearn_file(name: str) -> str:
    import importlib.util
    import os

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("nilearn is not installed: the MNI152 template ships inside it")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)


@lru_cache(maxsize=1)
def tissue_volumes() -> dict[str, np.ndarray]:
    """T1, GM, WM, CSF and non-brain volumes (float32, 197×233×189, 1 mm) from nilearn's files.

    CSF is the filled, slightly dilated brain mask minus GM and WM (clipped to [0, 1]); the
    non-brain part is the T1 outside that mask (scalp, fat, skull marrow).
    """
    import nibabel
    from scipy import ndimage

    def load(name):
        v = np.asanyarray(nibabel.load(_nilearn_file(name)).dataobj).astype(np.float32)
        return v / v.max()

    t1 = load("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = load("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = load("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    brain = ndimage.binary_closing(gm + wm > 0.4, iterations=3)
    brain = ndimage.binary_fill_holes(brain)
    brain = ndimage.binary_dilation(brain, iterations=2)
    soft = ndimage.gaussian_filter(brain.astype(np.float32), 1.0)
    csf = np.clip(soft - gm - wm, 0, 1)
    other = t1 * (1 - soft)
    return {"T1": t1, "gm": gm, "wm": wm, "csf": csf.astype(np.float32), "other": other}


def _contrast_volume_slice(kind: str, sl: dict[str, np.ndarray], rng) -> np.ndarray:
    if kind == "T1":
        return sl["T1"]
    c, g, w, o = (v * rng.uniform(0.85, 1.15) for v in _TISSUE[kind])
    return c * sl["csf"] + g * sl["gm"] + w * sl["wm"] + o * sl["other"]


def _take(vol: np.ndarray, orientation: str, i: int, z0: int, z1: int) -> np.ndarray:
    """One slice inside the slab z ∈ [z0, z1), rotated so that anterior/superior is up."""
    if orientation == "axial":
        return np.rot90(vol[:, :, i])
    if orientation == "coronal":
        return np.rot90(vol[:, i, z0:z1])
    return np.rot90(vol[i, :, z0:z1])


@lru_cache(maxsize=3)
def slice_index(split: str) -> tuple[tuple[str, int, int, int], ...]:
    """The usable template slices of a split: ``(orientation, index, z0, z1)``.

    A slice is usable when at least 2.5% of its square-padded field of view is head tissue
    (intensity > 0.1), which drops the empty edges of the volume; coronal and sagittal cuts of a
    slab are strips as tall as the slab, padded to a square.
    """
    _check_split(split)
    t1 = tissue_volumes()["T1"]
    out = []
    for z0, z1 in SLABS[split]:
        for o in ORIENTATIONS:
            rng_i = range(z0, z1) if o == "axial" else range(t1.shape[1 if o == "coronal" else 0])
            for i in rng_i:
                sl = _take(t1, o, i, z0, z1)
                side = max(sl.shape)
                if (sl > 0.1).sum() >= 0.025 * side * side:
                    out.append((o, i, z0, z1))
    return tuple(out)


def _square(img: np.ndarray, n: int) -> np.ndarray:
    from workbench.physics.mri.acquisition import resize_image

    h, w = img.shape
    s = max(h, w)
    sq = np.zeros((s, s), np.float32)
    sq[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = img
    return resize_image(sq, n)


def _bias_field(rng, n: int) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    c = rng.normal(size=6)
    b = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y
    b *= rng.uniform(0.0, 0.35) / max(np.abs(b).max(), 1e-12)
    return np.exp(b)


def _mni_image(rng, split: str, n: int) -> tuple[np.ndarray, dict]:
    idx = slice_index(split)
    o, i, z0, z1 = idx[int(rng.integers(len(idx)))]
    contrast = CONTRASTS[int(rng.integers(len(CONTRASTS)))]
    vols = tissue_volumes()
    sl = {k: _take(v, o, i, z0, z1) for k, v in vols.items()}
    img = np.clip(_contrast_volume_slice(contrast, sl, rng), 0, None)
    img = _square(img, n) * _bias_field(rng, n)
    meta = dict(source="MNI152 2009 template (nilearn)", orientation=o, slice=int(i))
    meta.update(slab=[int(z0), int(z1)], contrast=contrast)
    return img, meta


# ------------------------------------------------------------------------------------------
# Random-shape phantoms
# ------------------------------------------------------------------------------------------


def _grid(n: int):
    return np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")


def _ellipse(y, x, cy, cx, ay, ax, th):
    c, s = math.cos(th), math.sin(th)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1


def _support(rng, y, x):
    return _ellipse(
        y,
        x,
        rng.uniform(-0.1, 0.1),
        rng.uniform(-0.1, 0.1),
        rng.uniform(0.55, 0.85),
        rng.uniform(0.55, 0.85),
        rng.uniform(0, np.pi),
    )


def _phantom(rng, n: int) -> tuple[np.ndarray, dict]:
    from scipy import ndimage

    family = PHANTOM_FAMILIES[int(rng.integers(len(PHANTOM_FAMILIES)))]
    y, x = _grid(n)
    sup = _support(rng, y, x)
    img = sup * rng.uniform(0.2, 0.8)
    if family == "ellipses":
        for _ in range(int(rng.integers(3, 13))):
            e = _ellipse(
                y,
                x,
                rng.uniform(-0.5, 0.5),
                rng.uniform(-0.5, 0.5),
                rng.uniform(0.03, 0.45),
                rng.uniform(0.03, 0.45),
                rng.uniform(0, np.pi),
            )
            img = img + e * rng.uniform(-0.4, 0.8)
    elif family == "polygons":
        from skimage.draw import polygon

        for _ in range(int(rng.integers(2, 9))):
            k = int(rng.integers(3, 10))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(0.05, 0.4) * rng.uniform(0.4, 1.0, k)
            cy, cx = rng.uniform(-0.45, 0.45, 2)
            py = (cy + rad * np.sin(ang) + 1) * (n - 1) / 2
            px = (cx + rad * np.cos(ang) + 1) * (n - 1) / 2
            rr, cc = polygon(py, px, (n, n))
            img[rr, cc] += rng.uniform(-0.4, 0.8)
    else:  # textures: filtered noise through a random smooth transfer curve
        z = ndimage.gaussian_filter(rng.normal(size=(n, n)), rng.uniform(1.0, 6.0) * n / 128)
        z = (z - z.mean()) / max(z.std(), 1e-12)
        f = rng.uniform(0.5, 3.0)
        img = img + sup * (0.5 + 0.5 * np.sin(f * z + rng.uniform(0, 2 * np.pi)))
    img = np.clip(img, 0, None) * sup
    img = ndimage.gaussian_filter(img, 0.5)  # partial-volume edges, as a scanner's PSF gives
    return img.astype(np.float32), dict(source="random-shape phantom", family=family)


# ------------------------------------------------------------------------------------------
# Images, coils, acquisition
# ------------------------------------------------------------------------------------------


def _augment(rng, img: np.ndarray) -> tuple[np.ndarray, dict]:
    from scipy import ndimage

    k = int(rng.integers(4))
    img = np.rot90(img, k)
    fl = bool(rng.uniform() < 0.5)
    if fl:
        img = img[:, ::-1]
    angle = float(rng.uniform(-20, 20))
    img = ndimage.rotate(np.ascontiguousarray(img), angle, reshape=False, order=1, mode="constant")
    img = np.clip(img, 0, None)
    m = float(img.max())
    if m <= 0:
        raise RuntimeError("empty corpus image")  # cannot happen: every source has support
    gamma = float(rng.uniform(0.7, 1.4))
    img = (img / m) ** gamma
    return img, dict(rot90=k, flip=fl, rotation_deg=round(angle, 2), gamma=round(gamma, 3))


def _complex_image(rng, split: str, n: int) -> tuple[np.ndarray, dict]:
    """A complex image with max|x| = 1 (magnitude from a template slice or a phantom)."""
    from workbench.physics.mri.acquisition import smooth_phase

    if rng.uniform() < P_MNI:
        mag, meta = _mni_image(rng, split, n)
    else:
        mag, meta = _phantom(rng, n)
    mag, aug = _augment(rng, mag)
    meta.update(aug)
    scale = float(rng.uniform(0.0, 2.0))  # max|φ| = scale·π/2 ∈ [0, π]
    x = mag * np.exp(1j * scale * smooth_phase(rng, n, n))
    x = x / np.abs(x).max()
    meta["phase_max"] = round(scale * math.pi / 2, 3)
    return x.astype(np.complex64), meta


def _coils(rng, n: int) -> tuple[np.ndarray, dict]:
    from workbench.physics.mri.coils import (
        birdcage_rotated,
        normalize_maps,
        smooth_coil_phase,
        surface_coils,
    )

    c = int(rng.integers(COIL_RANGE[0], COIL_RANGE[1] + 1))
    if rng.uniform() < 0.5:
        r = float(rng.uniform(1.1, 2.0))
        maps = birdcage_rotated(c, n, n, r=r, angle=float(rng.uniform(0, 2 * np.pi)))
        meta = dict(coil_model=f"birdcage r={r:.2f}", coils=c)
        phase = rng.uniform() < 0.5
    else:
        ang = np.sort(rng.uniform(0, 2 * np.pi, c)) if rng.uniform() < 0.5 else None
        if ang is None:  # evenly spread with jitter
            ang = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(c) / c
            ang = ang + rng.normal(scale=0.3 / c, size=c)
        ry, rx = rng.uniform(0.8, 1.3, 2)
        centres = np.stack([ry * np.sin(ang), rx * np.cos(ang)], 1)
        widths = rng.uniform(0.3, 0.9, c)
        maps = surface_coils(centres, widths, n, n)
        meta = dict(coil_model="gaussian surface coils", coils=c)
        phase = True
    if phase:
        maps = normalize_maps(maps * smooth_coil_phase(rng, c, n, n))
    meta["coil_phase"] = bool(phase)
    return maps.astype(np.complex64), meta


def corpus_example(
    split: str, index: int, *, size: int | None = None, accel: float | None = None
) -> dict:
    """One simulated multi-coil acquisition of the corpus, deterministic in ``(split, index)``.

    ``y = M ⊙ (F(S x) + n)`` with circular complex noise of variance σ² per sample.

    Parameters
    ----------
    split : {"train", "val", "test"}
    index : int ≥ 0
    size : int, optional
        Image size N (default: drawn from :data:`SIZES`). Fixing it changes only the resolution.
    accel : float, optional
        Nominal acceleration R (default: uniform in [3, 10]); the centre fraction is
        :func:`center_fraction_for` (R).

    Returns
    -------
    dict
        ``image`` (H, W) complex64, the coil-combined truth with max|x| = 1; ``maps`` (C, H, W)
        complex64, the true maps (Σ|S|² = 1); ``mask`` (H, W) bool; ``kspace`` (C, H, W)
        complex64, masked and noised; ``sigma`` (float); ``reference`` (H, W) float32, the
        SENSE-combined magnitude of the noisy fully sampled data (``sense_noisy_full``);
        ``meta`` (dict): source, orientation/family, contrast, coils, accel, mask, sigma_rel, ...
    """
    import torch

    from workbench.physics.mri.fft import fft2c, ifft2c
    from workbench.physics.mri.masks import make_mask

    _check_split(split)
    rng = _rng(split, index)
    n = int(size) if size is not None else int(SIZES[int(rng.integers(len(SIZES)))])
    if size is not None and not 16 <= n <= 512:
        raise InputError(f"size must be in [16, 512], got {size}")
    r = float(accel) if accel is not None else float(rng.uniform(*ACCEL_RANGE))
    if r < 1:
        raise InputError(f"accel must be >= 1, got {accel}")
    # the image, coils and acquisition draw from separate streams, so fixing size or accel
    # changes nothing else about the example
    x, meta = _complex_image(_rng(split, index, 1), split, n)
    maps, cmeta = _coils(_rng(split, index, 2), n)
    arng = _rng(split, index, 3)
    sigma_rel = float(np.exp(arng.uniform(*np.log(SIGMA_REL_RANGE))))
    kind = MASK_KINDS[int(arng.integers(len(MASK_KINDS)))]
    cf = center_fraction_for(r)
    mk = make_mask(kind, (n, n), r, cf, int(arng.integers(0, 2**31 - 1)))
    sigma = sigma_rel * float(np.abs(x).max())
    k = fft2c(torch.from_numpy(maps * x[None])).numpy()  # complex64: the noise is ≥ 1e-3
    noise = arng.standard_normal(size=(2, *k.shape), dtype=np.float32)
    k = k + (noise[0] + 1j * noise[1]) * np.float32(sigma / math.sqrt(2))
    ref = np.abs((maps.conj() * ifft2c(torch.from_numpy(k)).numpy()).sum(0))
    mask = mk.array > 0
    meta.update(cmeta)
    meta.update(
        split=split,
        index=int(index),
        size=n,
        accel=r,
        center_fraction=cf,
        mask=kind,
        n_acs=int(mk.n_acs),
        effective_acceleration=float(mk.effective_acceleration),
        sigma_rel=sigma_rel,
        corpus_version=CORPUS_VERSION,
    )
    return {
        "image": x,
        "maps": maps,
        "mask": mask,
        "kspace": (k * mask[None]).astype(np.complex64),
        "sigma": float(sigma),
        "reference": ref.astype(np.float32),
        "meta": meta,
    }


def coil_combined_images(split: str, n: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """``n`` coil-combined complex images (n, size, size) complex64 with max|x| = 1 each.

    The same images as :func:`corpus_example` draws (template slices and phantoms, augmented,
    with a smooth phase), without coils or noise; deterministic in ``(split, n, size, seed)``:
    image i comes from the stream of index ``seed·10⁶ + i``.
    """
    _check_split(split)
    if n < 0 or seed < 0:
        raise InputError("n and seed must be >= 0")
    out = np.empty((n, size, size), np.complex64)
    for i in range(n):
        out[i] = _complex_image(_rng(split, seed * 1_000_000 + i, 1), split, size)[0]
    return out


def training_overlap(record: dict | None, meta: dict) -> str | None:
    """Why a model trained on the corpus revision ``record`` may have seen the example ``meta``.

    ``record`` is the ``corpus`` entry of a checkpoint's manifest (``version``, ``split`` and
    ``slabs_z``, the template slabs of every split at training time); ``meta`` is an example's
    metadata (:func:`corpus_example`). A template slice was seen when any of its voxels lies in
    the recorded training slabs: an axial slice is the plane z = ``slice``, a coronal or sagittal
    one the strip z ∈ [z0, z1) of its slab. A phantom was seen only when it comes from the same
    revision and split as the training images (the seed streams are keyed by both). The corpus
    moved its slabs once (version 1 → 2): version 1 trained on z ∈ [0, 34) ∪ [88, 189), which
    contains the version-2 test slab z ∈ [132, 189).

    Returns
    -------
    str or None
        The reason, or None when the example cannot have been in the training data.
    """
    if not record:
        return "the checkpoint's manifest does not record the corpus revision it was trained on"
    if "slab" in meta:
        o, i = meta["orientation"], int(meta["slice"])
        z0, z1 = (int(v) for v in meta["slab"])
        zs = range(i, i + 1) if o == "axial" else range(z0, z1)
        for a, b in record["slabs_z"][record.get("split", "train")]:
            if max(zs.start, a) < min(zs.stop, b):
                return (
                    f"template {o} slice {i} (z in [{zs.start}, {zs.stop})) overlaps the training "
                    f"slab [{a}, {b}) of corpus version {record['version']}"
                )
        return None
    if record["version"] == meta.get("corpus_version") and record.get("split") == meta.get("split"):
        return "phantom drawn from the training split's seed stream"
    return None


def corpus_problem(
    split: str,
    index: int,
    *,
    size: int | None = None,
    accel: float | None = None,
    maps: str = "auto",
):
    """The example as an :class:`~workbench.problems.MRIProblem` (one slice) with the noisy
    SENSE reference and the requested map estimate (``auto``, ``acs_rss``, ``espirit``, ``true``)."""
    from workbench.physics.mri.acquisition import build_problem

    ex = corpus_example(split, index, size=size, accel=accel)
    m = ex["meta"]
    return build_problem(
        None,
        name=f"corpus_{split}_{index}",
        measured=(ex["kspace"][None], ex["mask"].astype(np.float32)),
        maps=maps,
        true_maps=ex["maps"][None],
        reference=ex["reference"][None],
        reference_kind="sense_noisy_full",
        noise_sigma=ex["sigma"],
        meta={**m, "acceleration": m["accel"], "source": f"corpus {split} #{index}"},
    )
