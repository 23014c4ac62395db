"""Messages about a user's file name it once, whichever layers add to them."""

import pytest


@pytest.mark.parametrize(
    "message, once",
    [
        ("bad.h5: bad.h5: not a readable HDF5 file", "bad.h5: not a readable HDF5 file"),
        ("bad.h5 is not an HDF5 file", "bad.h5 is not an HDF5 file"),
        ("not a readable HDF5 file", "bad.h5: not a readable HDF5 file"),
        ("bad.h5:  bad.h5 is\nnot an HDF5 file", "bad.h5 is not an HDF5 file"),
    ],
)
def test_a_bad_file_is_named_once(message, once):
    from workbench.errors import name_once, without_name

    assert name_once("bad.h5", message) == once
    assert name_once("bad.h5", message).count("bad.h5") == 1
    assert "bad.h5" not in without_name("bad.h5", message)
