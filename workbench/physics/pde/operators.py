"""The differential operators N[u] of the PDE presets, written once for every solver that needs a
residual: GP-HM and the GP baselines (derivatives from kernels) and the PINNs (autograd)."""

from __future__ import annotations

import torch

from workbench.errors import InputError

# the derivatives of u each operator needs: "x" = ∂u/∂x, "yy" = ∂²u/∂y², ...
NEEDS = {
    "poisson": {"xx", "yy"},
    "allen_cahn": {"xx", "yy"},
    "advection": {"x", "y"},
    "drift_poisson": {"x", "xx", "y", "yy"},
    "burgers": {"x", "xx", "y"},
    "nl_poisson": {"x", "xx"},
}


def apply_operator(
    op: str, U: torch.Tensor, d: dict, coeffs: dict, grids: list[torch.Tensor]
) -> torch.Tensor:
    """N[u] at collocation points from u and its derivatives ``d`` (keys as in :data:`NEEDS`).

    ``grids`` are the coordinates broadcastable against ``U``; ``coeffs`` the problem's named
    coefficients. Differentiable in torch, so GP-HM (kernel derivatives on a grid) and PINNs
    (autograd at scattered points) share one definition of each operator.
    """
    if op == "poisson":
        return d["xx"] + d["yy"] if "yy" in d else d["xx"]
    if op == "allen_cahn":
        lap = d["xx"] + d["yy"] if "yy" in d else d["xx"]
        return lap + U * (U * U - 1)
    if op == "advection":
        return coeffs.get("beta", 1.0) * d["x"] + d["y"]
    if op == "drift_poisson":
        X, Y = grids
        return d["xx"] + d["yy"] - 2 * X * d["x"] - 2 * Y * d["y"] - 4 * U
    if op == "burgers":
        return d["y"] + coeffs.get("z1", 1.0) * U * d["x"] - coeffs.get("z0", 0.05) * d["xx"]
    if op == "nl_poisson":
        x = grids[0]
        th = torch.arccos(torch.clamp(x, -1, 1))
        a = sum(coeffs.get(f"z{k}", 0.0) * torch.cos(k * th) for k in range(5))
        # d/dx T_k(x) = k U_{k-1}(x); use the derivative of cos(k arccos x) safely via autograd-free form
        sin_th = torch.sin(th).clamp_min(1e-12)
        da = sum(coeffs.get(f"z{k}", 0.0) * k * torch.sin(k * th) / sin_th for k in range(1, 5))
        kap = torch.nn.functional.softplus(U * a) + 0.1
        sig = torch.sigmoid(U * a)
        return kap * d["xx"] + sig * (d["x"] * a + U * da) * d["x"]
    raise InputError(f"no residual for operator {op!r}")
