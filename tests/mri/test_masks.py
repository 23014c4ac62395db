"""Masks: acceleration, ACS placement, determinism (spec M2)."""

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.physics.mri.masks import MASK_TYPES, ONE_D, MaskFunc, acs_slice, make_mask


@pytest.mark.parametrize("kind", MASK_TYPES)
@pytest.mark.parametrize("shape", [(64, 64), (128, 128)])
def test_deterministic_and_binary(kind, shape):
    a = make_mask(kind, shape, 4, 0.08, seed=3)
    b = make_mask(kind, shape, 4, 0.08, seed=3)
    assert np.array_equal(a.array, b.array)
    assert set(np.unique(a.array)) <= {0.0, 1.0}
    assert a.array.shape == shape
    assert 0 < a.fraction <= 1
    assert a.effective_acceleration == pytest.approx(1 / a.fraction)


@pytest.mark.parametrize(
    "kind", ["random", "gaussian1d", "poisson", "gaussian2d", "radial", "spiral"]
)
def test_seed_changes_mask(kind):
    assert not np.array_equal(
        make_mask(kind, (64, 64), 4, 0.08, 0).array, make_mask(kind, (64, 64), 4, 0.08, 1).array
    )


def test_acs_placement_fastmri():
    p, n = acs_slice(128, 0.08)
    assert (p, n) == (59, 10)
    m = make_mask("equispaced", (128, 128), 4, 0.08, 0)
    assert m.columns[p : p + n].all()
    assert m.columns[128 // 2]
    # the equispaced mask samples about 30% at 128², 4×, cf 0.08 (spec §2)
    assert 0.28 <= m.fraction <= 0.32


@pytest.mark.parametrize("w", [64, 128, 320])
@pytest.mark.parametrize("r,cf", [(4, 0.08), (8, 0.04)])
def test_equispaced_fraction_hits_w_over_r(w, r, cf):
    m = make_mask("equispaced_fraction", (8, w), r, cf, 0)
    assert abs(m.columns.sum() - w / r) <= 2


def test_random_mean_columns():
    w, r = 128, 4
    counts = [make_mask("random", (1, w), r, 0.08, s).columns.sum() for s in range(300)]
    assert abs(np.mean(counts) - w / r) <= 0.5 + 3 * np.std(counts) / np.sqrt(len(counts))


@pytest.mark.parametrize("kind", ["gaussian1d", "gaussian2d", "poisson", "radial", "spiral"])
@pytest.mark.parametrize("r", [4, 8])
def test_actual_acceleration_close(kind, r):
    m = make_mask(kind, (128, 128), r, 0.08 if r == 4 else 0.04, 0)
    assert m.effective_acceleration == pytest.approx(r, rel=0.12)


def test_one_d_broadcast_along_readout():
    for kind in ONE_D:
        m = make_mask(kind, (32, 48), 4, 0.08, 0).array
        assert (m == m[:1]).all()


def test_maskfunc_and_errors():
    assert np.array_equal(
        MaskFunc("equispaced", 4, 0.08)((64, 64), 1).array,
        make_mask("equispaced", (64, 64), 4, 0.08, 1).array,
    )
    with pytest.raises(InputError):
        make_mask("nope", (8, 8))
    with pytest.raises(InputError):
        make_mask("random", (8, 8), acceleration=0.5)
