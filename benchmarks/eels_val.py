"""Shared set-up of the EELS validation sweeps: the validation cubes and how a sweep's score maps
are judged and summarised.

Validation cubes are the benchmark's conditions (:data:`eels.CONDITIONS`) at seeds that no test
cube uses (the benchmark's test seeds are 0-9, its own validation seeds 10000 + i): by default
20001-20004. A sweep judges a pooled score map by its ROC AUC on a cube with anomalies and by the
fraction of pixels flagged at the detector's default (calibrated) threshold on an anomaly-free cube.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

VAL_SEEDS = (20001, 20002, 20003, 20004)
SHIFT = ("shift 0.5 eV, dose 0.3x", "shift 1 eV, dose 0.3x")
RATIO = "L3/L2 ratio x1.6, dose 1x"
NULL = "null (no anomaly), drift 0.3 eV"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the sweeps' common ``--seeds`` option (comma-separated)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default=",".join(map(str, VAL_SEEDS)), help="validation seeds")
    return ap


def seeds(a: argparse.Namespace) -> list[int]:
    s = [int(x) for x in a.seeds.split(",")]
    if min(s) < 10_000:
        raise SystemExit("validation seeds must be >= 10000 (0-9 are the benchmark's test seeds)")
    return s


def cubes(conds, seed_list) -> Iterator[tuple[str, int, object]]:
    """(condition, seed, problem) of every validation cube, condition by condition."""
    import eels as B

    for cond in conds:
        for seed in seed_list:
            yield cond, seed, B._problem(cond, seed)


def judge(score_map: np.ndarray, prob, score: str = "shift") -> tuple[str, float]:
    """('auc', ROC AUC) on a cube with anomalies, else ('flagged', fraction of pixels above the
    default threshold of ``score``: the calibrated chi-square for the pooled shift / ratio
    likelihood ratios)."""
    from workbench.physics.eels import metrics as EM
    from workbench.solvers.eels import common as C

    if prob.truth is not None and prob.truth.any():
        return "auc", float(EM.roc_auc(score_map, prob.truth))
    return "flagged", float(C.threshold(score_map, "auto", score, 0.0)["mask"].mean())


class Table:
    """Per setting and condition, the judged values of every cube; :meth:`summary` prints the mean
    AUC per anomaly condition and the largest flagged fraction over the null cubes."""

    def __init__(self) -> None:
        self.v: dict[tuple, dict[str, list[float]]] = {}

    def add(self, setting, cond: str, value: float) -> None:
        self.v.setdefault(setting, {}).setdefault(cond, []).append(value)

    def summary(self, conds) -> str:
        out = ["setting: " + " / ".join(f"mean {c}" for c in conds)]
        for key, d in self.v.items():
            cells = []
            for c in conds:
                x = d.get(c, [])
                if not x:
                    cells.append("-")
                elif c.startswith("null"):
                    cells.append(f"null max flagged {max(x):.4f}")
                else:
                    cells.append(f"{np.mean(x):.3f} {[round(y, 3) for y in x]}")
            out.append(f"{key}: " + " / ".join(cells))
        return "\n".join(out)
