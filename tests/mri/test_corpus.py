"""The training corpus of issue 12: deterministic, disjoint splits, the stated physics."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.datasets import mri_corpus as mc
from workbench.errors import InputError


def test_example_is_deterministic_and_well_formed():
    a = mc.corpus_example("val", 5, size=64, accel=4.0)
    b = mc.corpus_example("val", 5, size=64, accel=4.0)
    for k in ("image", "maps", "mask", "kspace", "reference"):
        assert np.array_equal(a[k], b[k]), k
    assert a["meta"] == b["meta"] and a["sigma"] == b["sigma"]
    c, h, w = a["kspace"].shape
    assert (h, w) == (64, 64) and a["maps"].shape == (c, h, w)
    assert mc.COIL_RANGE[0] <= c <= mc.COIL_RANGE[1]
    assert a["image"].dtype == np.complex64 and a["kspace"].dtype == np.complex64
    assert a["mask"].dtype == bool
    assert np.isclose(np.abs(a["image"]).max(), 1.0, atol=1e-5)
    np.testing.assert_allclose((np.abs(a["maps"]) ** 2).sum(0), 1.0, atol=1e-4)
    assert np.all(a["kspace"][:, ~a["mask"]] == 0)
    lo, hi = mc.SIGMA_REL_RANGE
    assert lo <= a["meta"]["sigma_rel"] <= hi
    # another index differs
    d = mc.corpus_example("val", 6, size=64, accel=4.0)
    assert not np.array_equal(a["image"], d["image"])


def test_noise_level_matches_sigma():
    """On sampled points, y − M F(S x) is circular complex noise with E|n|² = σ²."""
    import torch

    from workbench.physics.mri.fft import fft2c

    ex = mc.corpus_example("train", 3, size=96, accel=3.0)
    clean = fft2c(torch.from_numpy(ex["maps"] * ex["image"][None])).numpy()
    n = (ex["kspace"] - clean)[:, ex["mask"]]
    est = np.sqrt(np.mean(np.abs(n) ** 2))
    assert abs(est / ex["sigma"] - 1) < 0.05
    assert abs(np.mean(n.real**2) / np.mean(n.imag**2) - 1) < 0.1


def test_fixing_size_or_accel_changes_nothing_else():
    a = mc.corpus_example("test", 2, size=64, accel=4.0)
    b = mc.corpus_example("test", 2, size=64, accel=8.0)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["maps"], b["maps"])
    assert a["mask"].mean() > b["mask"].mean()
    assert b["meta"]["center_fraction"] == pytest.approx(0.04)


def test_splits_are_disjoint_slabs_of_the_template():
    taken = {}
    for split in mc.SPLITS:
        zs = set()
        for z0, z1 in mc.SLABS[split]:
            zs |= set(range(z0, z1))
        taken[split] = zs
        for o, i, z0, z1 in mc.slice_index(split):
            # every slice lies inside one of its split's slabs
            assert (z0, z1) in mc.SLABS[split]
            if o == "axial":
                assert z0 <= i < z1
    assert not taken["train"] & taken["val"]
    assert not taken["train"] & taken["test"]
    assert not taken["val"] & taken["test"]
    assert all(len(mc.slice_index(s)) >= 10 for s in mc.SPLITS)


def test_examples_cover_the_stated_variety():
    metas = [mc.corpus_example("train", i, size=64)["meta"] for i in range(40)]
    src = {m["source"] for m in metas}
    assert len(src) == 2
    assert {m["mask"] for m in metas} == set(mc.MASK_KINDS)
    assert len({m["coil_model"].split()[0] for m in metas}) == 2
    accels = [m["accel"] for m in metas]
    assert min(accels) >= 3 and max(accels) <= 10 and max(accels) - min(accels) > 3
    assert len({m.get("orientation") for m in metas if "orientation" in m}) >= 2


def test_coil_combined_images_deterministic():
    a = mc.coil_combined_images("train", 3, size=48, seed=1)
    b = mc.coil_combined_images("train", 3, size=48, seed=1)
    c = mc.coil_combined_images("train", 3, size=48, seed=2)
    assert a.shape == (3, 48, 48) and a.dtype == np.complex64
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_allclose(np.abs(a).reshape(3, -1).max(1), 1.0, atol=1e-5)


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError):
        mc.corpus_example("training", 0)
    with pytest.raises(InputError):
        mc.corpus_example("train", -1)


def test_corpus_problem_has_the_reference():
    p = mc.corpus_problem("val", 0, size=64, accel=4.0)
    assert p.kspace.shape[0] == 1 and p.reference.shape == (1, 64, 64)
    assert p.reference_kind == "sense_noisy_full"
