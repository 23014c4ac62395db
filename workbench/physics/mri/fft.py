"""Centred orthonormal 2-D FFT: ``F = fftshift ∘ fft2(norm="ortho") ∘ ifftshift`` on the last two axes.

For even sizes the shifts are a checkerboard modulation: ``F x = s · c ⊙ fft2(c ⊙ x)`` with
``c[m, n] = (-1)^(m+n)`` and ``s = (-1)^(H/2 + W/2)``; the same holds for the inverse. The operators
fold ``c`` into the coil maps and ``s·c`` into the mask, so hot loops pay no shift at all.
"""

from __future__ import annotations

import torch


def fft2c_ref(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT with explicit shifts (the definition; used by tests)."""
    x = torch.fft.ifftshift(x, dim=(-2, -1))
    x = torch.fft.fft2(x, norm="ortho")
    return torch.fft.fftshift(x, dim=(-2, -1))


def ifft2c_ref(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT with explicit shifts."""
    k = torch.fft.ifftshift(k, dim=(-2, -1))
    k = torch.fft.ifft2(k, norm="ortho")
    return torch.fft.fftshift(k, dim=(-2, -1))


def checkerboard(h: int, w: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(-1)^(m+n)`` on an ``h × w`` grid."""
    m = torch.arange(h, device=device).view(-1, 1)
    n = torch.arange(w, device=device).view(1, -1)
    return (1 - 2 * ((m + n) % 2)).to(dtype)


def modulations(h: int, w: int, dtype=torch.float32, device=None):
    """``(c_in, c_out)`` such that ``F x = c_out ⊙ fft2(c_in ⊙ x)`` (even sizes), else ``None``."""
    if h % 2 or w % 2:
        return None
    c = checkerboard(h, w, dtype, device)
    sign = -1.0 if ((h // 2 + w // 2) % 2) else 1.0
    return c, c * sign


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT over the last two axes (modulation trick for even sizes)."""
    h, w = x.shape[-2:]
    mods = modulations(h, w, x.real.dtype, x.device)
    if mods is None:
        return fft2c_ref(x)
    c_in, c_out = mods
    return torch.fft.fft2(x * c_in, norm="ortho") * c_out


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT over the last two axes."""
    h, w = k.shape[-2:]
    mods = modulations(h, w, k.real.dtype, k.device)
    if mods is None:
        return ifft2c_ref(k)
    c_in, c_out = mods
    return torch.fft.ifft2(k * c_in, norm="ortho") * c_out


def rss(x: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root sum of squares over the coil axis."""
    return (
        torch.sqrt((x.real**2 + x.imag**2).sum(dim)) if x.is_complex() else x.pow(2).sum(dim).sqrt()
    )
