"""The MNI152 T1 read directly with nibabel is nilearn's ``load_mni152_template`` exactly."""

import numpy as np
import pytest

from workbench.datasets.mri import mni152_t1


def test_direct_read_equals_nilearn_loader():
    datasets = pytest.importorskip("nilearn.datasets")
    ref = np.asarray(datasets.load_mni152_template(resolution=1).get_fdata(), np.float64)
    ours = mni152_t1()
    assert ours.shape == ref.shape == (197, 233, 189)
    np.testing.assert_array_equal(ours, ref)


def test_test_slices_scanned_from_the_top_equal_the_split():
    """The samples take the test split without resizing the training slices: same array."""
    from workbench.datasets.mri import mni_slices, mni_test_slices

    np.testing.assert_array_equal(mni_test_slices(32), mni_slices(32)["test"])
