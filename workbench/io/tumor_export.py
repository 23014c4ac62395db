"""``workbench tumor export RUN_ID``: a stored tumour run's density, masks and seed as files.

For a case registered from patient space the NIfTI files are on the uploaded grid with the
patient's own affine (``--space input``, the default) and the seed is given in the patient's
millimetres and voxels as well as in MNI152 mm; ``--space atlas`` writes the working grid in MNI
mm.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from workbench.errors import InputError


def seed_record(problem, result) -> dict:
    """The seed in MNI mm and, for a registered case, in patient mm and voxel indices."""
    s = result.extras.get("seed_mm")
    if s is None:
        return {}
    out = {"seed_mni_mm": [float(v) for v in s]}
    reg = problem.meta.get("registration")
    if reg:
        from workbench.physics.tumor.registration import point_to_patient

        mm, vox = point_to_patient(
            np.asarray(s, np.float64), reg["to_patient"], problem.meta["patient_affine"]
        )
        out["seed_patient_mm"] = [float(v) for v in mm]
        out["seed_patient_voxel"] = [float(v) for v in vox]
    return out


def export_main(argv: list[str] | None = None) -> int:
    from workbench.io.tumor_nifti import export_nifti, params_json
    from workbench.store import RunStore

    ap = argparse.ArgumentParser(prog="workbench tumor export", description=__doc__.splitlines()[0])
    ap.add_argument("run_id")
    ap.add_argument("--out", default=None, help="folder (default: WORKBENCH_HOME/exports/RUN_ID)")
    ap.add_argument("--space", choices=("input", "atlas"), default="input")
    a = ap.parse_args(argv)
    store = RunStore()
    try:
        info = store.get(a.run_id)
    except (KeyError, LookupError):
        raise InputError(f"no run {a.run_id}") from None
    if info.domain != "tumor":
        raise InputError(f"run {a.run_id} is a {info.domain} run, not a tumour run")
    result = store.load_result(a.run_id)
    problem = store.load_problem(info.problem_id)
    if result.output is None or result.output.shape != problem.wt.shape:
        raise InputError(f"run {a.run_id} holds no density on the working grid")
    out = Path(a.out) if a.out else store.home / "exports" / a.run_id
    out.mkdir(parents=True, exist_ok=True)
    for name, data in export_nifti(problem, result, space=a.space).items():
        (out / name).write_bytes(data)
    (out / "params.json").write_bytes(params_json(result))
    (out / "seed.json").write_text(json.dumps(seed_record(problem, result), indent=2))
    print(str(out))
    return 0
