"""The training entry point: runs, writes a checkpoint + manifest, resumes."""

import json

import torch

from workbench.solvers.mri.recurrentvarnet import load_model
from workbench.train.mri_rvn import main


def test_train_writes_checkpoint_and_resumes(tmp_path):
    args = [
        "--data",
        "mni",
        "--accel",
        "4",
        "--size",
        "32",
        "--crop-h",
        "16",
        "--hidden",
        "4",
        "--init-channels",
        "2,2,4,4",
        "--val-every",
        "2",
        "--out",
        str(tmp_path),
        "--minutes",
        "2",
    ]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    man = json.loads((tmp_path / "rvn_4x.json").read_text())
    assert man["steps"] == 4 and man["command"].startswith("workbench train recurrentvarnet")
    assert len(man["sha256"]) == 64
    net, _ = load_model(str(tmp_path / "rvn_4x.pt"))
    sd = torch.load(tmp_path / "rvn_4x.pt", weights_only=True)
    assert set(sd) == set(net.state_dict())


def test_train_on_corpus_records_family_and_command(tmp_path):
    """The default data is the corpus: one model for R in [3, 10], its family in the manifest."""
    args = [
        "--size",
        "32",
        "--crop-h",
        "8",
        "--batch",
        "2",
        "--hidden",
        "4",
        "--init-channels",
        "2,2,4,4",
        "--n-val",
        "2",
        "--val-every",
        "2",
        "--out",
        str(tmp_path),
        "--steps",
        "2",
    ]
    assert main(args) == 0
    man = json.loads((tmp_path / "rvn_corpus.json").read_text())
    assert man["maps"] == "acs_rss" and man["training_family"]["acceleration"] == [3.0, 10.0]
    assert "mri_corpus" in man["data"] and man["acceleration"] is None
    assert man["command"].startswith("workbench train recurrentvarnet --size 32")
    load_model(str(tmp_path / "rvn_corpus.pt"))
