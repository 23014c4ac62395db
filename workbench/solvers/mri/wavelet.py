"""Orthogonal 2-D discrete wavelet transform (periodic boundaries) in torch.

``Ψ`` maps an image ``(N, H, W)`` (real or complex) to a coefficient image of the same shape in the
usual pyramid layout (approximation in the top-left corner). With orthonormal filters and periodic
extension it is unitary: ``Ψ^H Ψ = I``, so FISTA's proximal step is plain (complex) soft
thresholding of the coefficients. ``levels`` is reduced so that every level sees an even size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.solvers.mri.operators import LinearOperator

# Daubechies orthonormal decomposition low-pass filters (scaling coefficients)
FILTERS = {
    "haar": [0.7071067811865476, 0.7071067811865476],
    "db2": [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025],
    "db4": [
        -0.010597401784997278,
        0.032883011666982945,
        0.030841381835986965,
        -0.18703481171888114,
        -0.02798376941698385,
        0.6308807679295904,
        0.7148465705525415,
        0.23037781330885523,
    ],
}


def _filters(name: str, dtype, device):
    h = torch.tensor(FILTERS[name], dtype=dtype, device=device)
    n = h.numel()
    g = torch.tensor(
        [(-1) ** k * FILTERS[name][n - 1 - k] for k in range(n)], dtype=dtype, device=device
    )
    return h, g


def _analysis_1d(
    x: torch.Tensor, h: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Along the last axis: a[k] = Σ h[n] x[(2k+n) mod N], d likewise with g. x: (B, N) real."""
    L = h.numel()
    xp = torch.cat([x, x[:, : L - 2]], 1) if L > 2 else x
    w = torch.stack([h, g]).unsqueeze(1)  # (2, 1, L)
    out = F.conv1d(xp.unsqueeze(1), w, stride=2)
    return out[:, 0], out[:, 1]


def _synthesis_1d(
    a: torch.Tensor, d: torch.Tensor, h: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """Exact adjoint (= inverse) of :func:`_analysis_1d`."""
    L = h.numel()
    n = 2 * a.shape[1]
    w = torch.stack([h, g]).unsqueeze(1)  # (2, 1, L)
    yp = F.conv_transpose1d(torch.stack([a, d], 1), w, stride=2)[:, 0]
    x = yp[:, :n].clone()
    if L > 2:
        x[:, : L - 2] += yp[:, n:]
    return x


def _along(x: torch.Tensor, fn, axis: int):
    """Apply a (B, N) → … function along ``axis`` (-1 or -2) of a (B, H, W) real tensor."""
    if axis == -1:
        b, hh, ww = x.shape
        return fn(x.reshape(b * hh, ww)), (b, hh)
    xt = x.transpose(-1, -2)
    b, ww, hh = xt.shape
    return fn(xt.reshape(b * ww, hh)), (b, ww)


def dwt2(x: torch.Tensor, levels: int, wavelet: str = "db4") -> torch.Tensor:
    """Multi-level 2-D DWT of real ``(B, H, W)`` → same-shape pyramid."""
    h, g = _filters(wavelet, x.dtype, x.device)
    out = x.clone()
    H, W = x.shape[-2:]
    for lev in range(levels):
        hh, ww = H >> lev, W >> lev
        blk = out[:, :hh, :ww]
        b = blk.shape[0]
        a, d = _analysis_1d(blk.reshape(b * hh, ww), h, g)
        rows = torch.cat([a, d], 1).reshape(b, hh, ww)
        ct = rows.transpose(1, 2).reshape(b * ww, hh)
        a2, d2 = _analysis_1d(ct, h, g)
        cols = torch.cat([a2, d2], 1).reshape(b, ww, hh).transpose(1, 2)
        out[:, :hh, :ww] = cols
    return out


def idwt2(c: torch.Tensor, levels: int, wavelet: str = "db4") -> torch.Tensor:
    """Inverse (= adjoint) of :func:`dwt2`."""
    h, g = _filters(wavelet, c.dtype, c.device)
    out = c.clone()
    H, W = c.shape[-2:]
    for lev in reversed(range(levels)):
        hh, ww = H >> lev, W >> lev
        blk = out[:, :hh, :ww]
        b = blk.shape[0]
        ct = blk.transpose(1, 2).reshape(b * ww, hh)
        cols = (
            _synthesis_1d(ct[:, : hh // 2], ct[:, hh // 2 :], h, g)
            .reshape(b, ww, hh)
            .transpose(1, 2)
        )
        r = cols.reshape(b * hh, ww)
        rows = _synthesis_1d(r[:, : ww // 2], r[:, ww // 2 :], h, g).reshape(b, hh, ww)
        out[:, :hh, :ww] = rows
    return out


def max_levels(h: int, w: int, wanted: int, filt_len: int = 8) -> int:
    lev = 0
    while (
        lev < wanted
        and (h >> lev) % 2 == 0
        and (w >> lev) % 2 == 0
        and (h >> (lev + 1)) >= filt_len // 2
        and (w >> (lev + 1)) >= filt_len // 2
    ):
        lev += 1
    return lev


class WaveletOperator(LinearOperator):
    """Orthogonal 2-D wavelet transform Ψ on complex images ``(N, H, W)`` (real and imag separately)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        wavelet: str = "db4",
        levels: int = 4,
        dtype=torch.complex64,
        device="cpu",
    ):
        n, h, w = shape
        self.wavelet = wavelet
        self.levels = max_levels(h, w, levels, len(FILTERS[wavelet]))
        self.domain_shape = self.range_shape = (n, h, w)
        self.dtype, self.device = dtype, device

    def _apply(self, x, fn):
        if x.is_complex():
            n = x.shape[0]
            r = fn(torch.cat([x.real, x.imag], 0), self.levels, self.wavelet)
            return torch.complex(r[:n], r[n:])
        return fn(x, self.levels, self.wavelet)

    def forward(self, x):
        return self._apply(x, dwt2)

    def adjoint(self, c):
        return self._apply(c, idwt2)

    def normal(self, x):
        return x
