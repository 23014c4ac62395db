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
        "--sim",
        "fe",
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


def test_rich_pretraining_resamples_every_cube_to_the_network_grid(tmp_path):
    out = tmp_path / "rich.pt"
    argv = ["--out", str(out), "--epochs", "1", "--steps-per-epoch", "1", "--cubes", "2"]
    argv += ["--size", "16", "--batch", "2", "--latent", "4", "--sim", "rich"]
    assert train.main(argv) == 0
    model, meta = cvae_fit.load_checkpoint(out)
    assert meta["resampled"] and model.channels == cvae_fit.NET_CHANNELS
    man = json.loads(out.with_suffix(".json").read_text())
    edges = {c["edge"] for c in man["data"]["cubes"]}
    assert edges and all(0.05 <= c["dispersion"] <= 1.0 for c in man["data"]["cubes"])
    assert "roc_auc_pearson_mn_1eV_3pct" in man["metrics"]


def test_rich_params_span_edges_dispersions_and_doses():
    kws = [train.rich_params(s, 16) for s in range(60)]
    assert len({k["edge"] for k in kws}) >= 6
    d = [k["dispersion"] for k in kws]
    assert min(d) < 0.1 and max(d) > 0.5 and all(0.05 <= x <= 1.0 for x in d)
    n = [k["n_pk"] for k in kws]
    assert min(n) >= 4.5 and max(n) <= 450.0 and max(n) / min(n) > 20
    for k in kws:  # the window always holds the main edge
        from workbench.physics.eels.synth import EDGE_TABLE

        assert k["win"][0] < EDGE_TABLE[k["edge"]].onset < k["win"][1]


def test_bundled_manifest_matches_weights():
    path = cvae_fit.DEFAULT_CHECKPOINT
    if not path.exists():
        import pytest

        pytest.skip("bundled checkpoint not trained yet")
    man = json.loads(path.with_suffix(".json").read_text())
    assert man["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert man["command"].startswith("workbench train cvae3d")
