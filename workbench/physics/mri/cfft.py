"""Centred orthonormal 2-D FFT on NumPy arrays: ``F = fftshift ∘ fft2(norm="ortho") ∘ ifftshift``.

The NumPy twin of :mod:`workbench.physics.mri.fft` (which works on torch tensors) for the code
that needs no autograd and no device: simulating k-space, estimating coil maps, the zero-filled
baseline and the data-consistency metric. Keeping these in NumPy lets a zero-filled solve, a
sample build or an upload run without importing torch (about a second of start-up). Both follow
the same definition and agree to round-off (``tests/mri/test_operators.py``). Single precision
stays single (NumPy ≥ 2 transforms complex64 natively), as torch does.
"""

from __future__ import annotations

import numpy as np

_AXES = (-2, -1)


def fft2c(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal FFT over the last two axes, ``F x``."""
    x = np.fft.ifftshift(np.asarray(x), axes=_AXES)
    return np.fft.fftshift(np.fft.fft2(x, axes=_AXES, norm="ortho"), axes=_AXES)


def ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse FFT over the last two axes, ``F⁻¹ k = F^H k``."""
    k = np.fft.ifftshift(np.asarray(k), axes=_AXES)
    return np.fft.fftshift(np.fft.ifft2(k, axes=_AXES, norm="ortho"), axes=_AXES)
