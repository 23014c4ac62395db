"""`workbench train cvae3d`: a tiny run writes a loadable checkpoint and a complete manifest."""

import hashlib
import json

import torch

from workbench.nets import eels_cvae_fit as cvae_fit
from workbench.train import eels_cvae as train


def test_tiny_training_run_writes_checkpoint_and_manifest(tmp_path):
    out = tmp_path / "tiny.pt"
    argv = [
        "--out",
        str(out),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--cubes",
        "1",
        "--size",
        "16",
        "--batch",
        "2",
        "--latent",
        "4",
    ]
    assert train.main(argv) == 0
    man = json.loads(out.with_suffix(".json").read_text())
    assert man["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    for key in ("command", "data", "seed", "wall_time_s", "metrics", "history", "versions"):
        assert key in man
    assert man["command"].startswith("workbench train cvae3d")
    ck = torch.load(out, weights_only=True)  # no pickle of arbitrary objects
    assert set(ck) == {"config", "state_dict", "meta"}
    model, meta = cvae_fit.load_checkpoint(out)
    assert model.latent == 4 and abs(meta["dispersion"] - 0.3) < 1e-9


def test_bundled_manifest_matches_weights():
    path = cvae_fit.DEFAULT_CHECKPOINT
    if not path.exists():
        import pytest

        pytest.skip("bundled checkpoint not trained yet")
    man = json.loads(path.with_suffix(".json").read_text())
    assert man["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert man["command"].startswith("workbench train cvae3d")
