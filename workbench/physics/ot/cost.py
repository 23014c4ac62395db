"""Ground costs between the supports of two measures (the C of ``min_P <C, P>``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import InputError

COSTS = ("sqeuclidean", "euclidean")


def pairwise_cost(X: np.ndarray, Y: np.ndarray, cost: str) -> np.ndarray:
    """Squared Euclidean or Euclidean distances between the rows of X and Y."""
    d2 = np.sum(X**2, 1)[:, None] + np.sum(Y**2, 1)[None, :] - 2.0 * X @ Y.T
    np.maximum(d2, 0.0, out=d2)
    if cost == "sqeuclidean":
        return d2
    if cost == "euclidean":
        return np.sqrt(d2)
    raise InputError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")


class GroundCost:
    """A cost matrix served in row blocks, so that no solver needs a second dense copy of it.

    Subclasses hold either the dense matrix (:class:`DenseCost`) or only the support points and
    compute each block on the fly (:class:`PointCost`, memory O((n + m) d) instead of O(nm)).
    Costs are in normalised units (divided by ``scale``), like ``OTProblem.C``.

    Attributes
    ----------
    n, m : int
        Shape of the (virtual) cost matrix.
    dtype, device
        torch dtype and device of the blocks.
    """

    n: int
    m: int
    dtype: Any
    device: Any

    def block(self, i0: int, i1: int) -> Any:  # pragma: no cover - interface
        """Rows ``i0:i1`` of C as a torch tensor of shape (i1 - i0, m); may be a view: do not modify."""
        raise NotImplementedError

    def scaled_block(self, i0: int, i1: int, factor: float, out: Any) -> Any:
        """Write ``factor * C[i0:i1]`` into ``out`` (shape (i1 - i0, m)) and return it.

        Solvers pass the same preallocated buffer on every pass: no allocation per block, so
        no heap fragmentation and no page faults in the O(nm) loops.
        """
        import torch

        return torch.mul(self.block(i0, i1), factor, out=out)

    def logp_block(self, i0: int, i1: int, factor: float, row: Any, col: Any, out: Any) -> Any:
        """Write ``factor * C[i0:i1] + row[:, None] + col[None, :]`` into ``out`` and return it.

        ``row`` (length i1 - i0) and ``col`` (length m) are float64 tensors or None (zero); they
        are rounded to the block's dtype. This is the one O(nm) expression of every solver pass
        (``log P = alpha + beta - eta C - 1``); subclasses fuse it into fewer sweeps over memory.
        """
        W = self.scaled_block(i0, i1, factor, out)
        if row is not None:
            W += row[:, None].to(W.dtype)
        if col is not None:
            W += col[None, :].to(W.dtype)
        return W

    def value_range(self) -> tuple[float, float]:
        """(min C, max C), by one blockwise pass."""
        lo, hi = math.inf, -math.inf
        step = max(1, (1 << 18) // max(1, self.m))  # 2 MB float64 blocks, as the kernel passes
        for i0 in range(0, self.n, step):
            blk = self.block(i0, min(self.n, i0 + step))
            lo = min(lo, float(blk.min()))
            hi = max(hi, float(blk.max()))
        return lo, hi


class DenseCost(GroundCost):
    """A dense cost matrix (optionally restricted to rows ``ia`` and columns ``ib``).

    On the CPU in float64 with no restriction the tensor shares the NumPy array's memory (no copy);
    otherwise exactly one converted copy is made (float32, a device, or the restriction).
    """

    def __init__(
        self,
        C: np.ndarray,
        ia: np.ndarray | None = None,
        ib: np.ndarray | None = None,
        dtype: Any = None,
        device: Any = "cpu",
    ) -> None:
        import torch

        self.dtype = dtype or torch.float64
        self.device = torch.device(device)
        C = np.asarray(C)
        if ia is not None and ib is not None and (ia.size < C.shape[0] or ib.size < C.shape[1]):
            C = C[np.ix_(ia, ib)]
        if C.dtype == np.float64 and self.dtype == torch.float64 and self.device.type == "cpu":
            self.T = torch.from_numpy(np.ascontiguousarray(C))
        else:
            self.T = torch.as_tensor(np.ascontiguousarray(C), dtype=self.dtype, device=self.device)
        self.n, self.m = int(self.T.shape[0]), int(self.T.shape[1])

    def block(self, i0: int, i1: int) -> Any:
        return self.T[i0:i1]

    def logp_block(self, i0: int, i1: int, factor: float, row: Any, col: Any, out: Any) -> Any:
        import torch

        # one broadcast add with the scale folded in, then the other shift: two sweeps, not four
        C = self.T[i0:i1]
        if row is not None:
            torch.add(row[:, None].to(out.dtype), C, alpha=factor, out=out)
            if col is not None:
                out += col[None, :].to(out.dtype)
        elif col is not None:
            torch.add(col[None, :].to(out.dtype), C, alpha=factor, out=out)
        else:
            torch.mul(C, factor, out=out)
        return out

    def value_range(self) -> tuple[float, float]:
        return float(self.T.min()), float(self.T.max())


class PointCost(GroundCost):
    """C_ij = d(X_i, Y_j) / scale computed block by block from the support points.

    ``kind`` is ``sqeuclidean`` (|x - y|^2, via |x|^2 + |y|^2 - 2 x.y on centred points, clamped at
    0), ``euclidean`` (its square root) or ``cityblock`` (|x - y|_1). ``scale`` defaults to max C,
    found by one blockwise pass, so that costs lie in [0, 1] as for ``OTProblem``.
    """

    def __init__(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        kind: str = "sqeuclidean",
        scale: float | None = None,
        dtype: Any = None,
        device: Any = "cpu",
    ) -> None:
        import torch

        if kind not in COSTS + ("cityblock",):
            raise InputError(f"unknown cost {kind!r}; use one of {', '.join(COSTS)}, cityblock")
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        X = X[:, None] if X.ndim == 1 else X
        Y = Y[:, None] if Y.ndim == 1 else Y
        centre = 0.5 * (X.mean(0) + Y.mean(0))  # centring keeps |x|^2 + |y|^2 - 2x.y accurate
        self.dtype = dtype or torch.float64
        self.device = torch.device(device)
        self.kind = kind
        self.X = torch.as_tensor(X - centre, dtype=self.dtype, device=self.device)
        self.Y = torch.as_tensor(Y - centre, dtype=self.dtype, device=self.device)
        self.x2 = (self.X * self.X).sum(1)
        self.y2 = (self.Y * self.Y).sum(1)
        self.n, self.m = int(X.shape[0]), int(Y.shape[0])
        self.scale = 1.0
        if scale is None:
            scale = GroundCost.value_range(self)[1]
            if not scale > 0:
                raise InputError("all points coincide: every plan is optimal")
        self.scale = float(scale)

    def block(self, i0: int, i1: int) -> Any:
        import torch

        D = torch.empty((i1 - i0, self.m), dtype=self.dtype, device=self.device)
        return self.scaled_block(i0, i1, 1.0, D)

    def logp_block(self, i0: int, i1: int, factor: float, row: Any, col: Any, out: Any) -> Any:
        """Squared Euclidean: ``f |x_i|^2 + row_i + f |y_j|^2 + col_j - 2 f x_i.y_j`` with
        ``f = factor / scale`` as one GEMM whose bias carries the column terms, plus one add of
        the row terms (the generic route takes six sweeps over the block). The clamp of
        ``|x - y|^2`` at 0 is skipped: after centring its rounding error is ~1e-16 of the squared
        norms, far below the potentials' own."""
        import torch

        if self.kind != "sqeuclidean":
            return super().logp_block(i0, i1, factor, row, col, out)
        f = factor / self.scale
        cvec = self.y2 * f
        if col is not None:
            cvec = cvec + col.to(self.dtype)
        rvec = self.x2[i0:i1] * f
        if row is not None:
            rvec = rvec + row.to(self.dtype)
        torch.addmm(cvec[None, :], self.X[i0:i1], self.Y.t(), alpha=-2.0 * f, out=out)
        out += rvec[:, None]
        return out

    def scaled_block(self, i0: int, i1: int, factor: float, out: Any) -> Any:
        import torch

        Xb = self.X[i0:i1]
        if self.kind == "cityblock":
            out.copy_(torch.cdist(Xb, self.Y, p=1.0))
        else:
            torch.addmm(self.y2[None, :], Xb, self.Y.t(), alpha=-2.0, out=out)
            out += self.x2[i0:i1, None]
            out.clamp_(min=0.0)
            if self.kind == "euclidean":
                out.sqrt_()
        f = factor / self.scale
        if f != 1.0:
            out *= f
        return out
