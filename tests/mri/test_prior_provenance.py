"""The shipped diffusion prior never saw a voxel or a phantom seed of the examples that
``workbench bench mri_dds`` tests on (split at the template-slab / seed-stream level).

The prior is trained on the corpus's ``train`` split; the corpus once moved its slabs
(version 1 → 2) and a prior trained on version 1 had the whole version-2 test slab in its
training slab. The manifest records the corpus revision, and these tests read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.datasets import mri_corpus as mc

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "workbench" / "weights" / "mri" / "diffusion_prior.json"
# what the first shipped prior recorded nothing about: corpus version 1's slabs (commit 2d8ff04)
V1 = {
    "version": 1,
    "split": "train",
    "slabs_z": {"train": [[0, 34], [88, 189]], "val": [[70, 82]], "test": [[40, 64]]},
}
N_BENCH = 12  # more test examples than bench mri_dds uses (3 by default)


def _record():
    return json.loads(MANIFEST.read_text()).get("corpus")


def _test_metas(accel):
    return [mc.corpus_example("test", i, size=64, accel=accel)["meta"] for i in range(N_BENCH)]


def test_shipped_prior_was_trained_on_the_current_corpus_train_split():
    rec = _record()
    assert rec is not None, "the manifest must record the corpus revision of the training data"
    assert rec["version"] == mc.CORPUS_VERSION
    assert rec["split"] == "train"
    assert {k: [tuple(s) for s in v] for k, v in rec["slabs_z"].items()} == {
        k: list(v) for k, v in mc.SLABS.items()
    }


@pytest.mark.parametrize("accel", [4.0, 8.0])
def test_bench_test_examples_are_unseen_by_the_shipped_prior(accel):
    rec = _record()
    metas = _test_metas(accel)
    assert any("slab" in m for m in metas) and any("family" in m for m in metas)
    for m in metas:
        assert mc.training_overlap(rec, m) is None, m


def test_overlap_check_finds_the_version_1_contamination():
    """Planted answer: under corpus version 1's slabs, test example 0 (an axial slice at
    z = 142) and the coronal/sagittal strips of the test slab were training voxels."""
    metas = _test_metas(4.0)
    flagged = [m for m in metas if mc.training_overlap(V1, m)]
    assert metas[0]["orientation"] == "axial" and metas[0]["slice"] == 142
    assert metas[0] in flagged
    # every template example of the current test slab lies inside version 1's train slab
    assert flagged == [m for m in metas if "slab" in m]
    # phantoms: other revision and split, so other seed streams
    assert all(mc.training_overlap(V1, m) is None for m in metas if "family" in m)
    # a manifest that does not say what it was trained on cannot vouch for anything
    assert all(mc.training_overlap(None, m) for m in metas)
    slabs = {k: [list(s) for s in v] for k, v in mc.SLABS.items()}
    same = {"version": mc.CORPUS_VERSION, "split": "test", "slabs_z": slabs}
    assert all(mc.training_overlap(same, m) for m in metas)
