"""Operator properties: adjointness, A^H A = I, centred FFT conventions (spec M1)."""

import dataclasses

import numpy as np
import pytest
import torch

from workbench.physics.mri.coils import birdcage
from workbench.physics.mri.fft import fft2c, fft2c_ref, ifft2c, ifft2c_ref
from workbench.physics.mri.masks import make_mask
from workbench.physics.mri.operators import (
    CoilOperator,
    FFTOperator,
    GradientOperator,
    MaskOperator,
    SenseOperator,
    cg,
    single_coil,
)
from workbench.solvers.mri.wavelet import WaveletOperator

DTYPES = [torch.complex64, torch.complex128]


def _rand(shape, dtype, g):
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    return torch.complex(
        torch.randn(shape, generator=g, dtype=real), torch.randn(shape, generator=g, dtype=real)
    )


def _maps(n, c, h, w, dtype, g):
    m = _rand((n, c, h, w), dtype, g)
    return m / torch.sqrt((m.abs() ** 2).sum(1, keepdim=True))


def _operators(dtype, h=16, w=12):
    g = torch.Generator().manual_seed(0)
    mask = make_mask("random", (h, w), 3, 0.2, seed=1).array
    maps = _maps(2, 3, h, w, dtype, g)
    return {
        "fft": FFTOperator((2, 3, h, w), dtype),
        "mask": MaskOperator(mask, (2, 3, h, w), dtype),
        "coil": CoilOperator(maps),
        "sense": SenseOperator(maps, mask),
        "sense_shifts": SenseOperator(maps, mask, fold_shifts=False),
        "sense_odd": SenseOperator(_maps(1, 2, 15, 9, dtype, g), np.ones((15, 9))),
        "sense_2d_mask": SenseOperator(maps, make_mask("poisson", (h, w), 3, 0.2, seed=2).array),
        "single_coil": single_coil((h, w), mask, dtype),
        "gradient": GradientOperator((2, h, w), dtype),
        "wavelet": WaveletOperator((2, 32, 32), "db4", 2, dtype),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(_operators(torch.complex64)))
def test_adjointness(name, dtype):
    op = _operators(dtype)[name]
    g = torch.Generator().manual_seed(3)
    x = _rand(op.domain_shape, dtype, g)
    y = _rand(op.range_shape, dtype, g)
    ax = op.forward(x)
    lhs = torch.vdot(ax.flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert abs(complex(lhs - rhs)) <= tol * float(ax.norm() * y.norm())
    # normal operator agrees with adjoint(forward)
    assert torch.allclose(op.normal(x), op.adjoint(op.forward(x)), atol=10 * tol * float(x.norm()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_coil_fully_sampled_is_identity(dtype):
    A = single_coil((16, 20), np.ones((16, 20)), dtype)
    x = _rand((3, 16, 20), dtype, torch.Generator().manual_seed(0))
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert torch.allclose(A.normal(x), x, atol=tol * 10)
    assert torch.allclose(A.adjoint(A.forward(x)), x, atol=tol * 10)


def test_multicoil_full_mask_normal_is_identity():
    maps = torch.from_numpy(birdcage(8, 32, 32).astype(np.complex128))
    A = SenseOperator(maps, np.ones(32))
    x = _rand((1, 32, 32), torch.complex128, torch.Generator().manual_seed(0))
    assert torch.allclose(A.normal(x), x, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (16, 12), (10, 14), (9, 7), (15, 16)])
def test_centred_fft_matches_shifted_definition(shape):
    x = _rand((2, *shape), torch.complex128, torch.Generator().manual_seed(0))
    assert torch.allclose(fft2c(x), fft2c_ref(x), atol=1e-12)
    assert torch.allclose(ifft2c(x), ifft2c_ref(x), atol=1e-12)
    assert torch.allclose(ifft2c(fft2c(x)), x, atol=1e-12)
    # Parseval
    assert abs(float(fft2c(x).norm() - x.norm())) < 1e-10


def test_dc_at_centre():
    x = torch.ones(1, 16, 12, dtype=torch.complex128)
    k = fft2c(x)[0]
    assert abs(k[8, 6]) == pytest.approx(np.sqrt(16 * 12))
    k[8, 6] = 0
    assert float(k.abs().max()) < 1e-10


def test_folded_shifts_match_reference():
    g = torch.Generator().manual_seed(0)
    maps = _maps(2, 4, 16, 16, torch.complex128, g)
    mask = make_mask("equispaced", (16, 16), 4, 0.25, 0).array
    a, b = SenseOperator(maps, mask), SenseOperator(maps, mask, fold_shifts=False)
    x = _rand((2, 16, 16), torch.complex128, g)
    assert torch.allclose(a.forward(x), b.forward(x), atol=1e-12)
    assert torch.allclose(a.normal(x), b.normal(x), atol=1e-12)


def test_cg_matches_dense_complex_solve():
    g = torch.Generator().manual_seed(0)
    n = 12
    B = _rand((n, n), torch.complex128, g)
    M = B.conj().T @ B + 0.5 * torch.eye(n, dtype=torch.complex128)
    b = _rand((n,), torch.complex128, g)
    x, it = cg(lambda v: M @ v, b, None, 100, 1e-14)
    assert torch.allclose(x, torch.linalg.solve(M, b), atol=1e-8)


def test_sense_operator_of_a_problem_is_adjoint_and_matches_its_data():
    """physics builds a problem's A from its arrays; A x_true reproduces the noise-free k-space."""
    from workbench.errors import InputError
    from workbench.physics.mri.acquisition import build_problem
    from workbench.physics.mri.operators import sense_operator

    rng = np.random.default_rng(3)
    maps = birdcage(4, 32, 32)
    x = rng.normal(size=(32, 32)) + 1j * rng.normal(size=(32, 32))
    k = fft2c(torch.from_numpy(maps * x[None])).numpy()[None]
    p = build_problem(
        k, name="planted", mask="equispaced", acceleration=4, maps="true", true_maps=maps[None]
    )
    A = sense_operator(p, dtype=torch.complex128)
    xt = torch.from_numpy(x[None])
    assert torch.allclose(A.forward(xt), torch.from_numpy(p.kspace).to(torch.complex128), atol=1e-4)
    y = torch.randn(A.forward(xt).shape, dtype=torch.complex128)
    lhs = torch.vdot(A.forward(xt).flatten(), y.flatten())
    rhs = torch.vdot(xt.flatten(), A.adjoint(y).flatten())
    assert abs(lhs - rhs) <= 1e-5 * A.forward(xt).norm() * y.norm()
    with pytest.raises(InputError, match="no coil maps"):
        sense_operator(dataclasses.replace(p, maps=None))
