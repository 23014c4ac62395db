"""Data-parallel training: ``workbench train`` under torchrun with 2 CPU processes (gloo) gives
the one-process model to float tolerance; rank 0 alone writes the checkpoint and the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.errors import InputError
from workbench.train import distributed as D

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "--epochs", "3", "--steps-per-epoch", "2", "--batch", "4", "--cubes", "2", "--size", "48",
    "--latent", "4", "--device", "cpu", "--seed", "3",
]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _state(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _spectra(path: Path):
    """log pi of the posterior-mean reconstruction of a fixed random input (the model's output)."""
    import torch

    from workbench.nets.eels_cvae import log_pi
    from workbench.nets.eels_cvae_fit import load_checkpoint

    model, _ = load_checkpoint(path)
    cfg = model.config()
    g = torch.Generator().manual_seed(0)
    x = torch.rand((3, 1, cfg["patch"], cfg["patch"], cfg["channels"]), generator=g)
    valid = torch.ones(cfg["channels"], dtype=torch.bool)
    with torch.no_grad():
        mu, _ = model.encode(x)
        return log_pi(model.decode(mu), valid)


def test_one_process_is_the_identity():
    d = D.setup("cpu")
    assert (d.rank, d.world_size, d.enabled, d.is_main) == (0, 1, False, True)
    model = object()
    assert d.wrap(model) is model
    assert d.shard(6) == slice(0, 6)
    assert d.mean([1.5, 2.0]) == [1.5, 2.0] and d.broadcast([3.0]) == [3.0]
    assert d.command("workbench train cvae3d --epochs 1") == "workbench train cvae3d --epochs 1"


def test_sharding_and_environment():
    shards = [D.Dist(rank=r, world_size=3).shard(12) for r in range(3)]
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8), (8, 12)]
    with pytest.raises(InputError, match="multiple of 3"):
        D.Dist(rank=0, world_size=3).check_batch(8)
    assert D.world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2, 1)
    assert D.world_from_env({}) == (0, 1, 0)
    with pytest.raises(InputError):
        D.world_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    d = D.Dist(rank=0, world_size=4)
    os.environ["LOCAL_WORLD_SIZE"] = "2"
    try:
        cmd = d.command("workbench train cvae3d --epochs 1")
    finally:
        del os.environ["LOCAL_WORLD_SIZE"]
    assert cmd == "torchrun --nnodes 2 --nproc_per_node 2 -m workbench.cli train cvae3d --epochs 1"


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """The EELS 3D-CVAE trainer, once as one process and once under torchrun with 2 gloo
    processes (global batch 4 = 2 x 2): every parameter agrees to 1e-5 relative."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    run = dict(env=_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    r1 = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "train", "cvae3d", "--out", str(one), *TINY], **run
    )
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "workbench.cli", "train", "cvae3d", "--out", str(two), *TINY],
        **run,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    a, b = _state(one), _state(two)
    assert a.keys() == b.keys()
    # The output layer's bias adds one constant to every energy channel's logit, which the
    # softmax over channels cancels: its gradient is zero up to rounding, and Adam (which
    # divides by the gradient's own size) turns that rounding into steps of ~lr. It is the one
    # direction in which the parameters are not determined; the model (its spectra) is.
    free = "dec.9.bias"
    worst = 0.0
    for k in a:
        if k != free:
            scale = float(a[k].abs().max()) or 1.0
            worst = max(worst, float((a[k] - b[k]).abs().max()) / scale)
    assert worst <= 1e-5, worst
    assert _spectra(one).sub(_spectra(two)).abs().max() <= 1e-5 * _spectra(one).abs().max()
    # ... and the models moved: they are not both the initialisation
    m1 = json.loads(one.with_suffix(".json").read_text())
    m2 = json.loads(two.with_suffix(".json").read_text())
    assert m2["machine"]["distributed"] == {"processes": 2, "backend": "gloo", "device": "cpu"}
    assert m2["command"].startswith("torchrun --nnodes 1 --nproc_per_node 2 -m workbench.cli")
    assert m1["machine"]["distributed"]["processes"] == 1
    h1, h2 = m1["history"], m2["history"]
    assert h1["loss"][0] != h1["loss"][-1]
    # the logged epoch means (the KL is ~1e-4 here: a sum of near-cancelling terms, hence abs)
    for key in ("loss", "nll", "kl", "val_nll"):
        for u, v in zip(h1[key], h2[key], strict=True):
            assert v == pytest.approx(u, rel=1e-5, abs=1e-7), key
    # one writer: no leftovers of a second rank's write
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one.json", "one.pt", "two.json", "two.pt"
    ]  # fmt: skip


@pytest.mark.slow
def test_torchrun_two_processes_match_one_rvn(tmp_path):
    """The MRI RecurrentVarNet trainer: 3 steps of global batch 2 (1 + 1 under torchrun);
    rank 0 decides the learning rate and when to stop, the models agree to 1e-5."""
    tiny = ["--size", "64", "--crop-h", "32", "--batch", "2", "--steps", "3", "--val-every"]
    tiny += ["1000", "--minutes", "1000", "--num-steps", "2", "--hidden", "4", "--layers", "1"]
    tiny += ["--init-channels", "4,4,4,4", "--device", "cpu", "--name", "rvn"]
    run = dict(env=_env(), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    cmd = ["-m", "workbench.cli", "train", "recurrentvarnet", *tiny, "--out"]
    r1 = subprocess.run([sys.executable, *cmd, str(tmp_path / "one")], **run)
    assert r1.returncode == 0, r1.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    r2 = subprocess.run([*launcher, "2", *cmd, str(tmp_path / "two")], **run)
    assert r2.returncode == 0, r2.stderr[-3000:]
    import torch

    a = torch.load(tmp_path / "one" / "rvn.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "rvn.pt", weights_only=True)
    worst = max(float((a[k] - b[k]).abs().max()) / (float(a[k].abs().max()) or 1.0) for k in a)
    assert worst <= 1e-5, worst
    m1 = json.loads((tmp_path / "one" / "rvn.json").read_text())
    m2 = json.loads((tmp_path / "two" / "rvn.json").read_text())
    assert m2["distributed"]["processes"] == 2 and m2["steps"] == m1["steps"] == 3
    assert m2["final_val"]["psnr"] == pytest.approx(m1["final_val"]["psnr"], rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["rvn.json", "rvn.pt"]
