"""Orthogonal 2-D discrete wavelet transform (periodic boundaries) in torch.

``Ψ`` maps an image ``(N, H, W)`` (real or complex) to a coefficient image of the same shape in the
usual pyramid layout (approximation in the top-left corner). With orthonormal filters and periodic
extension it is unitary: ``Ψ^H Ψ = I``, so FISTA's proximal step is plain (complex) soft
thresholding of the coefficients. ``levels`` is reduced so that every level sees an even size.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from workbench.physics.mri.operators import LinearOperator

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


@lru_cache(maxsize=64)
def _analysis_matrix(n: int, wavelet: str, dtype: torch.dtype, device: str) -> torch.Tensor:
    """One-level periodic analysis as an orthogonal (n × n) matrix: rows = [lowpass; highpass]."""
    h, g = _filters(wavelet, torch.float64, "cpu")
    eye = torch.eye(n, dtype=torch.float64)
    a, d = _analysis_1d(eye, h, g)  # columns of the transform applied to unit vectors
    return torch.cat([a, d], 1).T.contiguous().to(device=device, dtype=dtype)


def dwt2(x: torch.Tensor, levels: int, wavelet: str = "db4") -> torch.Tensor:
    """Multi-level 2-D DWT of real ``(B, H, W)`` → same-shape pyramid (two small matmuls per level)."""
    out = x.clone()
    H, W = x.shape[-2:]
    for lev in range(levels):
        hh, ww = H >> lev, W >> lev
        mh = _analysis_matrix(hh, wavelet, x.dtype, str(x.device))
        mw = _analysis_matrix(ww, wavelet, x.dtype, str(x.device))
        out[:, :hh, :ww] = mh @ out[:, :hh, :ww] @ mw.T
    return out


def idwt2(c: torch.Tensor, levels: int, wavelet: str = "db4") -> torch.Tensor:
    """Inverse (= adjoint) of :func:`dwt2`."""
    out = c.clone()
    H, W = c.shape[-2:]
    for lev in reversed(range(levels)):
        hh, ww = H >> lev, W >> lev
        mh = _analysis_matrix(hh, wavelet, c.dtype, str(c.device))
        mw = _analysis_matrix(ww, wavelet, c.dtype, str(c.device))
        out[:, :hh, :ww] = mh.T @ out[:, :hh, :ww] @ mw
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
