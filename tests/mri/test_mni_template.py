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


def test_minimal_nifti_reader_equals_nibabel_and_declines_what_it_does_not_read(tmp_path):
    """The templates are read without nibabel: the same arrays (dtype, values, layout) and
    affines; a scaled or 4-D file is left to nibabel (None)."""
    import nibabel as nib

    from workbench.physics.nifti import read_nifti_gz
    from workbench.physics.tumor.atlas import ATLAS_FILES, _nilearn_data_dir

    d = _nilearn_data_dir()
    for f in (*ATLAS_FILES, "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"):
        im = nib.load(str(d / f))
        data, affine = read_nifti_gz(d / f)
        want = np.asanyarray(im.dataobj)
        assert data.dtype == want.dtype and data.flags.f_contiguous == want.flags.f_contiguous
        np.testing.assert_array_equal(data, want)
        np.testing.assert_allclose(affine, im.affine)
    vol = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    plain = nib.Nifti1Image(vol, np.diag([2.0, 3.0, 4.0, 1.0]))
    nib.save(plain, tmp_path / "plain.nii.gz")
    data, affine = read_nifti_gz(tmp_path / "plain.nii.gz")
    np.testing.assert_array_equal(data, vol)
    np.testing.assert_allclose(affine, np.diag([2.0, 3.0, 4.0, 1.0]))
    scaled = nib.Nifti1Image(vol, np.eye(4))
    scaled.header.set_slope_inter(2.0, 1.0)
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 2), np.float32), np.eye(4)), tmp_path / "4d.nii")
    assert read_nifti_gz(tmp_path / "scaled.nii.gz") is None
    assert read_nifti_gz(tmp_path / "4d.nii") is None
