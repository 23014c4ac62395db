"""The issue's CLI: solve a fastMRI file with a mask from --param; bad files exit 2, nothing stored."""

import json

import numpy as np
import pytest

from workbench.cli import main


@pytest.fixture
def h5file(tmp_path, fastmri_file):
    p, _, _ = fastmri_file(tmp_path)
    return p


def test_solve_fastmri_file(h5file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "solve",
            "mri",
            "--solver",
            "cg_sense",
            "--input",
            str(h5file),
            "--param",
            "mask=equispaced",
            "--param",
            "acceleration=4",
            "--param",
            "center_fraction=0.08",
            "--param",
            "seed=0",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"psnr", "ssim", "nmse"} <= set(rep["metrics"])
    with np.load(out / "result.npz", allow_pickle=False) as z:
        assert z["output"].shape == (2, 16, 24)


@pytest.mark.parametrize("content", [b"not hdf5", None])
def test_bad_files_exit_2(tmp_path, content, capsys):
    import h5py

    p = tmp_path / "bad.h5"
    if content is None:
        with h5py.File(p, "w") as f:
            f.create_dataset("kspace", data=np.ones((1, 2, 8, 8), np.float32))
    else:
        p.write_bytes(content)
    rc = main(["solve", "mri", "--solver", "zero_filled", "--input", str(p)])
    assert rc == 2
    assert "error" in capsys.readouterr().err.lower()
