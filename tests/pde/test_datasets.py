import json

import numpy as np
import pytest

from workbench import registry
from workbench.datasets.pde import DOMAIN, PRESETS, evaluate, load, make_preset
from workbench.errors import InputError
from workbench.physics.pde.compiled import validate
from workbench.physics.pde.metrics import truth_on_test
from workbench.problems import PDEProblem
from workbench.result import Result


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_validate_and_round_trip(name):
    p = make_preset(name)
    validate(p)
    q = PDEProblem.from_arrays(p.to_arrays())
    assert q.id == p.id and q.box == p.box and q.n_col == p.n_col


def test_gp_hm_table_presets_are_on_the_papers_domains():
    assert make_preset("poisson1d_sin100").box == ((0.0, 2 * np.pi),)
    assert make_preset("poisson2d_sin100").box == ((0.0, 2 * np.pi),) * 2
    assert make_preset("advection2d_beta200").coefficients["beta"] == 200.0
    assert DOMAIN.samples[0].name == "poisson1d_sin10"


def test_json_loader_example_from_the_issue():
    p = load(
        json.dumps(
            {"operator": "poisson", "domain": [[0, 1]], "exact": "sin(50*x) + x**2"}
        ).encode()
    )
    assert p.dim == 1 and p.n_col[0] >= 50  # resolution adapted to the frequency (≈8 cycles)
    true = truth_on_test(p)
    x = np.linspace(0, 1, 300)
    np.testing.assert_allclose(true, np.sin(50 * x) + x**2)


def test_json_loader_source_and_boundary_with_params():
    spec = {
        "operator": "advection",
        "domain": [[0, 1], [0, 1]],
        "source": "0",
        "boundary": "sin(x - beta*y)",
        "params": {"beta": 3},
        "n_col": 16,
    }
    p = load(json.dumps(spec).encode(), "adv.json")
    assert p.name == "adv" and p.coefficients == {"beta": 3.0} and p.n_col == (16, 16)
    u = truth_on_test(p)  # the reference solution (characteristics)
    X, Y = np.meshgrid(np.linspace(0, 1, 300), np.linspace(0, 1, 300), indexing="ij")
    np.testing.assert_allclose(u, np.sin(X - 3 * Y), atol=1e-12)


@pytest.mark.parametrize(
    "spec",
    [
        {"operator": "poisson", "domain": {"type": "disk", "r": 1}, "exact": "x"},
        {"operator": "poisson", "domain": [[0, 1, 2]], "exact": "x"},
        {"operator": "poisson", "domain": [[1, 0]], "exact": "x"},
        {"operator": "poisson", "domain": [[0, 1]] * 3, "exact": "x"},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "__import__('os')"},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "foo(x)"},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "sin(y)"},
        {"operator": "poisson", "domain": [[0, 1]], "source": "1"},
        {"operator": "heat3d", "domain": [[0, 1]], "exact": "x"},
        {"operator": "advection", "domain": [[0, 1]], "exact": "x"},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "x", "colour": 1},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "log(x)"},
        {"operator": "poisson", "domain": [[0, 1]], "exact": "x", "params": {"a": "b"}},
        [1, 2],
    ],
)
def test_json_loader_rejects_bad_specs(spec):
    with pytest.raises(InputError):
        load(json.dumps(spec).encode())


def test_loader_rejects_bad_bytes():
    with pytest.raises(InputError):
        load(b"\xff\xfe not json")
    with pytest.raises(InputError):
        load(b"{" * 200_000)


def test_evaluate_uses_test_grid_and_interpolates_other_grids():
    p = make_preset("poisson1d_sin10")
    x = np.linspace(0, 2 * np.pi, 300)
    r = Result(output=np.sin(10 * x), kind="field", extras={"x": x, "u_test": np.sin(10 * x)})
    assert evaluate(p, r)["rel_l2"] < 1e-14
    xg = np.linspace(0, 2 * np.pi, 2001)
    r = Result(output=np.sin(10 * xg), kind="field", extras={"x": xg})
    assert evaluate(p, r)["rel_l2"] < 1e-3


def test_domain_registered():
    dom = registry.get_domain("pde")
    assert dom.load is load and "json" in dom.upload_types
    names = {s.name for s in registry.solvers("pde")}
    assert {"reference", "gp_hm", "gp_se", "pinn", "pinn_fourier"} <= names
    p = dom.sample("poisson1d_sin100", n_col=64)
    assert p.n_col == (64,)


@pytest.mark.parametrize(
    "spec",
    [
        '{"domain": [[0, 1]], "exact": "sin(x)", "freq_scale": Infinity}',
        '{"domain": [[0, 1]], "exact": "sin(x)", "freq_scale": NaN}',
        '{"domain": [[0, 1]], "exact": "sin(x)", "params": {"a": -Infinity}}',
        '{"domain": [[0, 1]], "exact": "sin(x)", "freq_scale": 1e400}',
        '{"domain": [[0, 1]], "exact": "sin(x)", "observations": {"points": [0.5], "values": [1], "sigma": 1e999}}',
    ],
)
def test_specs_take_finite_numbers_only(spec):
    from workbench.datasets.pde import load

    with pytest.raises(InputError, match="finite"):
        load(spec.encode(), "p.json")
