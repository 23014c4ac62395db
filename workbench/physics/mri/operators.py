"""Linear operators of multi-coil Cartesian MRI, in torch, batched, complex64/complex128, CPU/CUDA.

Every operator is an object with ``forward``, ``adjoint`` and ``normal`` (``A^H A``) and declares
``domain_shape``/``range_shape`` so that one parametrised test checks
``|<Ax, y> - <x, A^H y>| <= 1e-5 ||Ax|| ||y||`` for all of them.

The multi-coil operator is ``(A x)_c = M ⊙ F(S_c x)``, ``A^H y = Σ_c conj(S_c) ⊙ F⁻¹(M ⊙ y_c)``
with ``F`` the centred orthonormal FFT (:mod:`.fft`). With ``M ≡ 1`` and ``Σ_c |S_c|² = 1``,
``A^H A = I``.

Examples
--------
>>> import torch
>>> maps = torch.ones(1, 1, 8, 8, dtype=torch.complex64)
>>> A = SenseOperator(maps, torch.ones(8))
>>> x = torch.randn(1, 8, 8, dtype=torch.complex64)
>>> bool(torch.allclose(A.normal(x), x, atol=1e-6))
True
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.physics.mri.fft import fft2c, ifft2c, modulations


def cnorm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of a (complex) tensor; much faster than ``linalg.vector_norm`` on complex."""
    if x.is_complex():
        x = torch.view_as_real(x)
    return torch.sqrt((x * x).sum())


class LinearOperator:
    """Base: ``forward``, ``adjoint``, ``normal``; shapes for tests; ``A(x)`` is ``A.forward(x)``."""

    domain_shape: tuple[int, ...] = ()
    range_shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.complex64
    device: torch.device | str = "cpu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjoint(self.forward(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def as_mask(mask, h: int, w: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Broadcast a mask given as ``(W,)``, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` to 4-D."""
    m = torch.as_tensor(mask, device=device).to(dtype)
    if m.ndim == 1:
        if m.shape[0] != w:
            raise ValueError(f"1-D mask has {m.shape[0]} columns, k-space has {w}")
        m = m.view(1, 1, 1, w).expand(1, 1, h, w)
    elif m.ndim == 2:
        m = m.view(1, 1, *m.shape)
    elif m.ndim == 3:
        m = m.unsqueeze(1)
    if m.shape[-2:] != (h, w):
        raise ValueError(f"mask shape {tuple(m.shape[-2:])} does not match k-space ({h}, {w})")
    return m.contiguous()


class FFTOperator(LinearOperator):
    """Centred orthonormal FFT on ``(..., H, W)``; unitary, so ``adjoint = inverse``."""

    def __init__(self, shape: tuple[int, ...], dtype=torch.complex64, device="cpu"):
        self.domain_shape = self.range_shape = tuple(shape)
        self.dtype, self.device = dtype, device

    def forward(self, x):
        return fft2c(x)

    def adjoint(self, y):
        return ifft2c(y)

    def normal(self, x):
        return x


class MaskOperator(LinearOperator):
    """Multiplication by a binary sampling mask (self-adjoint, idempotent)."""

    def __init__(self, mask, shape: tuple[int, ...], dtype=torch.complex64, device="cpu"):
        h, w = shape[-2:]
        self.mask = as_mask(
            mask, h, w, torch.float32 if dtype == torch.complex64 else torch.float64, device
        )
        self.domain_shape = self.range_shape = tuple(shape)
        self.dtype, self.device = dtype, device

    def forward(self, x):
        return x * self.mask

    adjoint = forward
    normal = forward


class CoilOperator(LinearOperator):
    """Expand an image to coil images, ``x ↦ S ⊙ x``; adjoint ``Σ_c conj(S_c) y_c``."""

    def __init__(self, maps: torch.Tensor):
        self.maps = maps if maps.ndim == 4 else maps.unsqueeze(0)
        n, c, h, w = self.maps.shape
        self.domain_shape, self.range_shape = (n, h, w), (n, c, h, w)
        self.dtype, self.device = maps.dtype, maps.device

    def forward(self, x):
        return self.maps * x.unsqueeze(1)

    def adjoint(self, y):
        return (self.maps.conj() * y).sum(1)


class SenseOperator(LinearOperator):
    """Multi-coil Cartesian MRI: ``(A x)_c = M ⊙ F(S_c x)``.

    Parameters
    ----------
    maps : Tensor, shape (N, C, H, W) or (C, H, W), complex
        Coil sensitivities (the dtype of the operator).
    mask : array-like
        ``(W,)``, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` binary sampling mask.
    fold_shifts : bool
        For even sizes fold the fftshift pair into the maps and the mask (default); ``False``
        uses explicit shifts (reference path, tested to agree).

    Notes
    -----
    Shapes: image ``(N, H, W)``, k-space ``(N, C, H, W)``. ``normal`` never forms k-space shifts.
    """

    def __init__(self, maps: torch.Tensor, mask, fold_shifts: bool = True):
        maps = maps if maps.ndim == 4 else maps.unsqueeze(0)
        self.maps = maps
        n, c, h, w = maps.shape
        real = torch.float32 if maps.dtype == torch.complex64 else torch.float64
        self.mask = as_mask(mask, h, w, real, maps.device)
        nb = max(n, self.mask.shape[0])
        self.domain_shape, self.range_shape = (nb, h, w), (nb, c, h, w)
        self.dtype, self.device = maps.dtype, maps.device
        mods = modulations(h, w, real, maps.device) if fold_shifts else None
        if mods is None:
            self._maps_in, self._mask_out = None, None
        else:
            c_in, c_out = mods
            self._maps_in = maps * c_in
            self._mask_out = self.mask * c_out

    def coil_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps * x.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._maps_in is None:
            return self.mask * fft2c(self.maps * x.unsqueeze(1))
        return self._mask_out * torch.fft.fft2(self._maps_in * x.unsqueeze(1), norm="ortho")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self._maps_in is None:
            return (self.maps.conj() * ifft2c(self.mask * y)).sum(1)
        return (self._maps_in.conj() * torch.fft.ifft2(self._mask_out * y, norm="ortho")).sum(1)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        if self._maps_in is None:
            return self.adjoint(self.forward(x))
        k = torch.fft.fft2(self._maps_in * x.unsqueeze(1), norm="ortho") * self.mask
        return (self._maps_in.conj() * torch.fft.ifft2(k, norm="ortho")).sum(1)

    def with_mask(self, mask) -> SenseOperator:
        return SenseOperator(self.maps, mask, fold_shifts=self._maps_in is not None)


def sense_operator(
    problem, device: str = "cpu", dtype: torch.dtype = torch.complex64
) -> SenseOperator:
    """The forward operator ``A`` of an :class:`~workbench.problems.MRIProblem` on a device.

    The problem holds only arrays (the core knows no physics); this builds ``A`` from its coil
    maps and mask. Raises :class:`~workbench.errors.InputError` when the problem has no maps.
    """
    from workbench.errors import InputError

    if problem.maps is None:
        raise InputError("this problem has no coil maps; estimate them (acs_rss or espirit) first")
    maps = torch.from_numpy(np.ascontiguousarray(problem.maps)).to(device, dtype)
    mask = torch.from_numpy(np.ascontiguousarray(problem.mask)).to(device)
    return SenseOperator(maps, mask)


def single_coil(shape: tuple[int, int], mask, dtype=torch.complex64, device="cpu") -> SenseOperator:
    """Single-coil operator ``M ⊙ F x`` (unit map)."""
    maps = torch.ones(1, 1, *shape, dtype=dtype, device=device)
    return SenseOperator(maps, mask)


class GradientOperator(LinearOperator):
    """Forward differences along H and W with a zero last difference (Neumann); ``‖∇‖² ≤ 8``.

    Image ``(N, H, W)`` ↦ ``(N, 2, H, W)``.
    """

    def __init__(self, shape: tuple[int, int, int], dtype=torch.complex64, device="cpu"):
        n, h, w = shape
        self.domain_shape, self.range_shape = (n, h, w), (n, 2, h, w)
        self.dtype, self.device = dtype, device

    def forward(self, x):
        g = torch.zeros(*x.shape[:-2], 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
        g[..., 0, :-1, :] = x[..., 1:, :] - x[..., :-1, :]
        g[..., 1, :, :-1] = x[..., :, 1:] - x[..., :, :-1]
        return g

    def adjoint(self, g):
        gy, gx = g[..., 0, :, :], g[..., 1, :, :]
        out = torch.zeros_like(gy)
        out[..., :-1, :] -= gy[..., :-1, :]
        out[..., 1:, :] += gy[..., :-1, :]
        out[..., :, :-1] -= gx[..., :, :-1]
        out[..., :, 1:] += gx[..., :, :-1]
        return out


def power_norm(op: LinearOperator, n_iter: int = 20) -> float:
    """Largest singular value squared of ``op`` (‖A‖²) by power iteration from a fixed start."""
    x = torch.ones(op.domain_shape, dtype=op.dtype, device=op.device)
    x = x / cnorm(x)
    lam = 0.0
    for _ in range(n_iter):
        y = op.normal(x)
        lam = float(cnorm(y))
        if lam == 0:
            return 0.0
        x = y / lam
    return lam


def cg(
    normal,
    rhs: torch.Tensor,
    x0: torch.Tensor | None = None,
    n_iter: int = 10,
    tol: float = 0.0,
    callback=None,
):
    """Conjugate gradients for a Hermitian positive (semi-)definite ``normal`` (complex ``vdot``).

    Solves ``normal(x) = rhs`` from ``x0`` (default 0) with ``r^H r`` and ``p^H A p`` inner products
    over the whole batch. ``callback(k, x, rnorm, r)`` (r the residual ``rhs − normal(x)``) runs after each iteration and may return True
    to stop. Returns ``(x, iterations)``.
    """
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - normal(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = torch.vdot(r.flatten(), r.flatten()).real
    r0 = float(torch.sqrt(torch.vdot(rhs.flatten(), rhs.flatten()).real)) or 1.0
    k = 0
    for k in range(1, n_iter + 1):
        if float(rr) == 0.0:
            k -= 1
            break
        ap = normal(p)
        pap = torch.vdot(p.flatten(), ap.flatten()).real
        if not (float(pap) > 0.0 and torch.isfinite(pap)):
            # converged to float precision: p^H A p underflowed, a further step would be 0/0
            k -= 1
            break
        alpha = rr / pap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.vdot(r.flatten(), r.flatten()).real
        rnorm = float(torch.sqrt(rr_new))
        stop = callback(k, x, rnorm, r) if callback is not None else False
        if stop or (tol > 0 and rnorm <= tol * r0):
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, k


def _bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-item ``a_i^H b_i`` over the leading (batch) index, real part, shape ``(N, 1, ..., 1)``."""
    prod = (a.conj() * b).real if a.is_complex() else a * b
    return prod.flatten(1).sum(1).view(-1, *([1] * (a.ndim - 1)))


def cg_batch(normal, rhs: torch.Tensor, x0: torch.Tensor | None = None, n_iter: int = 5):
    """Conjugate gradients on a batch of independent Hermitian positive-definite systems.

    Solves ``normal(x)_i = rhs_i`` for every item ``i`` of the leading index, each with its own
    step sizes, from the Krylov subspace ``x0_i + K_k(A_i, r0_i)``:

    .. math::

        α_k = \\frac{r_k^H r_k}{p_k^H A p_k}, \\quad x_{k+1} = x_k + α_k p_k, \\quad
        r_{k+1} = r_k − α_k A p_k, \\quad p_{k+1} = r_{k+1} + \\frac{r_{k+1}^H r_{k+1}}{r_k^H r_k} p_k.

    The inner products are conjugated (``r^H r``, ``p^H A p``): with the transpose-only ``r^T r``
    of some reference code, CG on complex data is not CG (α is complex and the residuals lose
    orthogonality). Items are independent, so a sample's result does not depend on which other
    samples share the batch (unlike :func:`cg`, whose inner products span the whole batch).
    An item whose residual is exactly zero stops moving.

    Parameters
    ----------
    normal : callable
        ``x ↦ A x`` for a batch ``(N, ...)``, Hermitian positive (semi-)definite per item.
    rhs : Tensor, shape (N, ...)
    x0 : Tensor, optional
        Start (default 0). DDS starts from the Tweedie estimate.
    n_iter : int
        Number of iterations (no tolerance: few iterations are the regulariser in DDS).

    Returns
    -------
    Tensor
        The iterate after ``n_iter`` steps.
    """
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs.clone() if x0 is None else rhs - normal(x)
    p = r.clone()
    rr = _bdot(r, r)
    for _ in range(n_iter):
        ap = normal(p)
        pap = _bdot(p, ap)
        # converged items (rr = 0) keep α = 0 instead of 0/0
        alpha = torch.where(rr > 0, rr / torch.where(pap > 0, pap, torch.ones_like(pap)), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _bdot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), 0.0)
        p = r + beta * p
        rr = rr_new
    return x
