"""Exact Dirichlet conditions for neural solutions: u(x) = G(x) + D(x)·N(x) on a box.

G is a smooth lift of the boundary data g into the interior (linear in 1-D, the transfinite
Coons patch in 2-D) and D a smooth function that vanishes exactly on the faces that carry data
and is positive inside (a product of normalised quadratics, the "approximate distance" of
Sukumar & Srivastava, CMAME 389 (2022) 114333). Any network N then satisfies the boundary
conditions to round-off, so the loss needs no boundary weight.

2-D Dirichlet (s, t ∈ [0, 1] the normalised coordinates on [a, b] × [c, d]):

    G = (1−s) g(a, y) + s g(b, y) + (1−t) g(x, c) + t g(x, d)
        − [(1−s)(1−t) g(a, c) + s(1−t) g(b, c) + (1−s)t g(a, d) + s t g(b, d)]
    D = 16 s(1−s) t(1−t)

``initial_boundary`` (no data on the last variable's upper face, e.g. time):

    G = g(x, c) + (1−s)[g(a, y) − g(a, c)] + s[g(b, y) − g(b, c)],   D = 4 s(1−s) t

G and D are torch functions, so autograd gives the derivatives the residual needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sympy as sp
import torch

from workbench.errors import InputError
from workbench.physics.pde import expr as E
from workbench.problems import PDEProblem

_TORCH = {
    name: getattr(torch, name)
    for name in ("sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "erf")
}
_TORCH.update(atan=torch.atan, asin=torch.asin, acos=torch.acos, Abs=torch.abs, pi=math.pi)


def torch_function(text: str, problem: PDEProblem) -> Callable[..., torch.Tensor]:
    """A whitelisted expression of the problem's variables as a differentiable torch function.

    The text is parsed by :func:`workbench.physics.pde.expr.parse` (never evaluated), the
    coefficients are substituted, and sympy prints it against torch's functions.
    """
    coeffs = {k: float(v) for k, v in problem.coefficients.items()}
    e = E.parse(text, problem.variables, tuple(coeffs))
    e = e.subs({E.sym(k): v for k, v in coeffs.items()}) if coeffs else e
    fn = sp.lambdify([E.sym(v) for v in problem.variables], e, modules=[_TORCH, "math"])

    def call(*xs: torch.Tensor) -> torch.Tensor:
        out = fn(*xs)
        if not torch.is_tensor(out):  # a constant expression
            return torch.full_like(xs[0], float(out))
        return out + torch.zeros_like(xs[0])

    return call


class DirichletLift:
    """u = G(x) + D(x)·N(x): exact Dirichlet data on a 1-D or 2-D box.

    Parameters
    ----------
    problem : PDEProblem
        ``bc`` is ``"dirichlet"`` (every face) or ``"initial_boundary"`` (all faces but the last
        variable's upper one); the data are ``problem.boundary`` or, failing that, ``exact``.
    """

    def __init__(self, problem: PDEProblem) -> None:
        if problem.bc not in ("dirichlet", "initial_boundary"):
            raise InputError(f"exact boundary conditions need Dirichlet data, not {problem.bc!r}")
        text = problem.boundary or problem.exact
        if text is None:
            raise InputError("exact boundary conditions need boundary data or an exact solution")
        self.g = torch_function(text, problem)
        self.box = [(float(lo), float(hi)) for lo, hi in problem.box]
        self.dim = problem.dim
        self.initial = problem.bc == "initial_boundary"

    def _st(self, X: torch.Tensor) -> list[torch.Tensor]:
        return [(X[:, j] - lo) / (hi - lo) for j, (lo, hi) in enumerate(self.box)]

    def distance(self, X: torch.Tensor) -> torch.Tensor:
        """D(x) ≥ 0, zero exactly on the faces with data, 1 at the centre of a Dirichlet box."""
        st = self._st(X)
        if self.dim == 1:
            return 4 * st[0] * (1 - st[0])
        s, t = st
        if self.initial:
            return 4 * s * (1 - s) * t
        return 16 * s * (1 - s) * t * (1 - t)

    def lift(self, X: torch.Tensor) -> torch.Tensor:
        """G(x): equal to g on every face with data, smooth inside."""
        g = self.g
        if self.dim == 1:
            (a, b) = self.box[0]
            s = self._st(X)[0]
            x = X[:, 0]
            return (1 - s) * g(torch.full_like(x, a)) + s * g(torch.full_like(x, b))
        (a, b), (c, d) = self.box
        s, t = self._st(X)
        x, y = X[:, 0], X[:, 1]
        A, B = torch.full_like(x, a), torch.full_like(x, b)
        C, Dd = torch.full_like(y, c), torch.full_like(y, d)
        if self.initial:
            return g(x, C) + (1 - s) * (g(A, y) - g(A, C)) + s * (g(B, y) - g(B, C))
        edges = (1 - s) * g(A, y) + s * g(B, y) + (1 - t) * g(x, C) + t * g(x, Dd)
        corners = (
            (1 - s) * (1 - t) * g(A, C)
            + s * (1 - t) * g(B, C)
            + (1 - s) * t * g(A, Dd)
            + s * t * g(B, Dd)
        )
        return edges - corners
