import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from workbench.physics.eels.synth import BENCH_VARIABILITY  # noqa: E402

# the benchmark's acquisition variability (benchmarks/eels.py BASE) at the mid dose
BENCH = dict(n_pk=45.0, **BENCH_VARIABILITY)


@pytest.fixture(scope="session")
def bench_kw():
    """``bench_kw(size=40, **overrides)``: generator keywords of a small ``size`` x ``size`` cube
    with the benchmark's acquisition variability."""

    def make(size: int = 40, **kw):
        return {**BENCH, "ny": size, "nx": size, **kw}

    return make


@pytest.fixture(scope="session")
def bench_cube(bench_kw):
    """``bench_cube(seed, size=40, name="bench", **overrides)``: that cube as an EELS problem."""
    from workbench.datasets.eels import synthetic

    def make(seed: int, size: int = 40, name: str = "bench", **kw):
        return synthetic(bench_kw(size, seed=seed, **kw), name=name)

    return make
