"""The solver contract, checked for every registered solver on its domain's first sample.

- ``solve`` returns a Result with a known kind and status;
- the same seed gives the same output;
- the global RNGs (``random``, numpy's legacy global, torch's default) are never touched;
- cancelling at step k gives what ``max_iter=k`` gives.
"""

import dataclasses
import random

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.progress import Progress
from workbench.result import KINDS, STATUSES, Result

SPECS = registry.solvers()


def _fields(spec):
    return {f.name: f for f in dataclasses.fields(spec.Params)}


def _small(spec, **over):
    """Parameters with a short iteration budget, on the CPU."""
    fields = _fields(spec)
    kw = {}
    if "max_iter" in fields:
        kw["max_iter"] = min(fields["max_iter"].default, 4)
    if "device" in fields:
        kw["device"] = "cpu"
    kw.update(over)
    return spec.params(kw)


@pytest.fixture(scope="module")
def problems():
    cache = {}

    def get(domain):
        if domain not in cache:
            dom = registry.get_domain(domain)
            cache[domain] = dom.sample(dom.samples[0].name)
        return cache[domain]

    return get


def _rng_states():
    legacy = np.random.get_state()[1].copy()  # noqa: NPY002 (the global state is what we check)
    return (random.getstate(), legacy, torch.random.get_rng_state().clone())


def _same_states(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.domain}-{s.name}" for s in SPECS])
def test_contract(spec, problems):
    problem = problems(spec.domain)
    params = _small(spec)
    r1 = spec.solve(problem, params, Progress())  # first call also pays lazy imports
    assert isinstance(r1, Result) and r1.kind in KINDS and r1.status in STATUSES
    assert r1.status != "failed", r1.message
    before = _rng_states()
    r2 = spec.solve(problem, params, None)
    assert _same_states(before, _rng_states()), "the solver touched a global RNG"
    np.testing.assert_array_equal(r1.output, r2.output, err_msg="same seed, different output")

    fields = _fields(spec)
    if "max_iter" not in fields or params.max_iter < 2:
        return
    k = max(1, params.max_iter // 2)
    cancelled = spec.solve(problem, params, Progress(cancel_after=k))
    capped = spec.solve(problem, _small(spec, max_iter=k), None)
    if capped.status == "converged":
        return  # converged before step k: nothing to cancel
    assert cancelled.status == "cancelled"
    np.testing.assert_array_equal(cancelled.output, capped.output)
