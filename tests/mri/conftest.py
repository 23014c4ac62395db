import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(1)


import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _write_fastmri_file(tmp_path, single=False, with_mask=False, name="file.h5"):
    """A synthetic file in the fastMRI layout (as fastMRI's tests/create_temp_data.py does)."""
    from workbench.io.mri_fastmri import make_header, write_fastmri
    from workbench.physics.mri.acquisition import rss_full
    from workbench.physics.mri.metrics import center_crop

    rng = np.random.default_rng(0)
    s, c, h, w = 2, 4, 64, 48
    img = np.zeros((s, h, w))
    img[:, 16:48, 10:38] = 1 + rng.uniform(size=(s, 32, 28))
    from workbench.physics.mri.coils import birdcage, to_kspace

    maps = birdcage(c, h, w)
    k = to_kspace((maps[None] * img[:, None]).astype(np.complex64)).astype(np.complex64)
    left = w // 2 - w // 2  # padding_left = enc_y//2 - center
    k[..., left + (w - 4) :] = 0  # unacquired columns beyond the band (maximum = w - 5)
    if single:
        k = k[:, 0]
    recon = (16, 24)  # centre crop of the reconstruction (as fastMRI crops readout oversampling)
    rss = center_crop(rss_full(k if not single else k[:, None]), recon)
    hdr = make_header((h, w), recon, center=w // 2, maximum=w - 5)
    mask = None
    if with_mask:
        mask = np.zeros(w, np.float32)
        mask[::4] = 1
        mask[20:28] = 1
    p = tmp_path / name
    write_fastmri(p, k, rss, mask, {"max": float(rss.max()), "acquisition": "AXT1"}, hdr)
    return p, k, rss


@pytest.fixture
def fastmri_file():
    """``fastmri_file(tmp_path, single=False, with_mask=False, name="file.h5") -> (path, kspace, rss)``."""
    return _write_fastmri_file
