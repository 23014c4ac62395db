import numpy as np
import pytest
import sympy as sp

from workbench.errors import InputError
from workbench.physics.pde import expr as E

UNSAFE = [
    "__import__('os').system('ls')",
    "x.__class__",
    "x.real",
    "open(x)",
    "eval(x)",
    "lambda: 1",
    "[x for x in y]",
    "x[0]",
    "sin(x, y)",
    "sin(x=1)",
    "9**9**9",
    "exp(x)**1000",
    "z",
    "x; import os",
    "x if x else 1",
    "x" + "+x" * 300,
    "",
    "sin(x",
    "'x'",
    "True",
]


@pytest.mark.parametrize("text", UNSAFE)
def test_parser_rejects_unsafe_or_unknown_input(text):
    with pytest.raises(InputError):
        E.parse(text, ("x",))


def test_parser_accepts_math_and_caret_power():
    e = E.parse("sin(50*x) + x^2 - 3.5e-1*exp(-x)*tanh(x) + pi", ("x",))
    x = sp.Symbol("x", real=True)
    assert sp.simplify(e - (sp.sin(50 * x) + x**2 - 0.35 * sp.exp(-x) * sp.tanh(x) + sp.pi)) == 0


def test_coefficients_are_whitelisted_names():
    e = E.parse("sin(x - beta*y)", ("x", "y"), ("beta",))
    assert {s.name for s in e.free_symbols} == {"x", "y", "beta"}
    with pytest.raises(InputError):
        E.parse("x", ("x",), ("sin",))
    with pytest.raises(InputError):
        E.parse("x", ("x",), ("__class__",))


def test_source_derived_symbolically_for_each_operator():
    x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    u = E.parse("sin(3*x)*cos(2*y)", ("x", "y"))
    f = E.derive_source("poisson", u, ("x", "y"), {})
    assert sp.simplify(f + 13 * sp.sin(3 * x) * sp.cos(2 * y)) == 0
    f = E.derive_source("advection", u, ("x", "y"), {"beta": 2.0})
    assert (
        sp.simplify(f - (6 * sp.cos(3 * x) * sp.cos(2 * y) - 2 * sp.sin(3 * x) * sp.sin(2 * y)))
        == 0
    )
    f = E.derive_source("allen_cahn", u, ("x", "y"), {})
    assert sp.simplify(f - (-13 * u + u * (u**2 - 1))) == 0


def test_peak_double_source_matches_closed_form():
    # the DAS/AAS bimodal problem: Δu − ∇·(u ∇(x² + y²)) with two Gaussian peaks
    u = E.parse(
        "exp(-1000*((x-0.5)**2+(y-0.5)**2)) + exp(-1000*((x+0.5)**2+(y+0.5)**2))", ("x", "y")
    )
    f = E.lambdify(E.derive_source("drift_poisson", u, ("x", "y"), {}), ("x", "y"), {})
    U = E.lambdify(u, ("x", "y"), {})
    X, Y = np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41), indexing="ij")
    h = 1e-4
    lap = (U(X + h, Y) + U(X - h, Y) + U(X, Y + h) + U(X, Y - h) - 4 * U(X, Y)) / h**2
    ux = (U(X + h, Y) - U(X - h, Y)) / (2 * h)
    uy = (U(X, Y + h) - U(X, Y - h)) / (2 * h)
    ref = lap - (2 * X * ux + 2 * Y * uy + 4 * U(X, Y))
    assert np.abs(f(X, Y) - ref).max() <= 1e-3 * np.abs(ref).max()


def test_lambdify_broadcasts_constants_and_rejects_free_coefficients():
    c = E.lambdify(E.parse("2", ("x",)), ("x",), {})
    assert c(np.zeros(5)).shape == (5,)
    with pytest.raises(InputError):
        E.lambdify(E.parse("a*x", ("x",), ("a",)), ("x",), {})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("((((10**64)**64)**64)**64)*x", "out of range"),  # a 28-character integer bomb
        ("(10**64)**64*x", "out of range"),
        ("(2 + 3)**4**3*x", "out of range"),
        ("1e300*x", "out of range"),
        ("1/(2 - 2)*x", "division by zero"),
        ("(-8)**(1/3)*x", "not real"),
        ("sin(" * 99 + "x" + ")" * 99, "nested function calls"),
        ("-" * 60 + "x", "nested too deeply"),
        ("+".join(["x"] * 200), "too complex|nested too deeply"),
    ],
)
def test_budget_refuses_before_symbolic_work(text, why, monkeypatch):
    """The budget is checked on the syntax tree: sympy is never called for these inputs."""
    from workbench.physics.pde import expr as E

    E._parse_cached.cache_clear()

    def no_sympy(*a, **k):
        raise AssertionError("symbolic work started")

    monkeypatch.setattr(E, "_build", no_sympy)
    with pytest.raises(InputError, match=why):
        E.parse(text, ("x",))
    E._parse_cached.cache_clear()


def test_constant_subexpressions_within_budget_keep_their_value():
    from workbench.physics.pde import expr as E

    assert float(E.parse("(2 + 3)**4", ("x",))) == 625.0
    assert float(E.parse("1/(1 + pi)", ("x",))) == pytest.approx(1 / (1 + np.pi))
    assert float(E.parse("(-2)**3", ("x",))) == -8.0


def test_derived_source_size_is_bounded(monkeypatch):
    from workbench.physics.pde import expr as E

    monkeypatch.setattr(E, "MAX_DERIVED_OPS", 50)
    u = E.parse("sin(sin(sin(sin(x))))*exp(cos(x))", ("x",))
    with pytest.raises(InputError, match="derived source"):
        E.derive_source("poisson", u, ("x",), {})
