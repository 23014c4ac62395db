"""Small networks for PINNs, initialised from an explicit ``torch.Generator`` (never the global RNG)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """x (scaled to [−1, 1]) or Fourier features → ``depth`` hidden layers of ``width`` → u.

    Input scaling maps the box affinely onto [−1, 1]^d; output scaling multiplies the last
    layer by ``out_scale`` (the solution's expected size), so that Xavier-initialised weights
    see O(1) inputs and produce O(1) targets whatever the problem's units. ``zero_last`` starts
    the output layer at zero (the hidden layers stay Xavier), so that N ≡ 0 at the start.
    """

    def __init__(
        self,
        box: tuple,
        width: int,
        depth: int,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        fourier: torch.Tensor | None = None,
        out_scale: float = 1.0,
        in_scale: float = 1.0,
        zero_last: bool = False,
    ) -> None:
        super().__init__()
        # the last layer's output is multiplied by out_scale, the expected size of the solution,
        # so that an O(1) network output already has the right magnitude (output scaling)
        self.out_scale = float(out_scale)
        # inputs go to [−in_scale, in_scale]: in_scale > 1 when the solution varies on a length
        # much shorter than the box, so that one unit of network input spans about one radian
        self.in_scale = float(in_scale)
        d = len(box)
        self.register_buffer("lo", torch.tensor([b[0] for b in box], dtype=dtype))
        self.register_buffer("hi", torch.tensor([b[1] for b in box], dtype=dtype))
        self.fourier = None
        if fourier is not None:
            self.register_buffer("B", fourier.to(dtype))  # (m, d), cycles per unit length
            self.fourier = True
            n_in = 2 * fourier.shape[0]
        else:
            n_in = d
        sizes = [n_in] + [width] * depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=False):
            w = torch.empty(b, a, dtype=dtype)
            bound = math.sqrt(6.0 / (a + b))  # Xavier uniform
            w.uniform_(-bound, bound, generator=generator)
            if zero_last and b == 1:
                # the output layer starts at zero, so the initial u is the lift G alone: a
                # random O(out_scale) field would be "worse than zero" by orders of magnitude
                # for a localised solution; the draw above still advances the generator
                w.zero_()
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(b, dtype=dtype)))
        self.act = torch.sin if activation == "sin" else torch.tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fourier:
            z = 2 * math.pi * x @ self.B.T
            h = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        else:
            h = self.in_scale * (2 * (x - self.lo) / (self.hi - self.lo) - 1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=False)):
            h = h @ w.T + b
            if i < n - 1:
                h = self.act(h)
        return h[:, 0] * self.out_scale

    def taylor(self, x: torch.Tensor, second: bool = True):
        """u, its gradient and the diagonal of its Hessian, in one forward pass.

        Forward-mode propagation of the input derivatives through the layers (the chain rule
        written out), instead of nested reverse-mode ``autograd.grad`` calls: with
        z = W h + b and h⁺ = σ(z),

            ∂_j z = W ∂_j h,   ∂_jj z = W ∂_jj h,
            ∂_j h⁺ = σ'(z) ∂_j z,   ∂_jj h⁺ = σ''(z) (∂_j z)² + σ'(z) ∂_jj z,

        stacked into one matrix product per layer. The result stays differentiable in the
        weights (one backward pass for the loss gradient). Same values as autograd to round-off.

        Parameters
        ----------
        x : Tensor, shape (n, d)
        second : bool
            Also return the second derivatives ∂²u/∂x_j² (else ``None``).

        Returns
        -------
        u : Tensor (n,); du : Tensor (n, d), ∂u/∂x_j; d2u : Tensor (n, d) or None, ∂²u/∂x_j².
        """
        n, d = x.shape
        if self.fourier:
            z = 2 * math.pi * x @ self.B.T  # (n, m)
            w = 2 * math.pi * self.B.T  # (d, m): ∂z/∂x_j
            c, s = torch.cos(z), torch.sin(z)
            h = torch.cat([c, s], -1)
            dh = torch.cat([-s[None] * w[:, None], c[None] * w[:, None]], -1)  # (d, n, 2m)
            d2h = (
                torch.cat([-c[None] * w[:, None] ** 2, -s[None] * w[:, None] ** 2], -1)
                if second
                else None
            )
        else:
            # the affine input map: ∂h⁰/∂x_j = c_j e_j, no curvature
            cj = self.in_scale * 2 / (self.hi - self.lo)  # (d,)
            h = self.in_scale * (2 * (x - self.lo) / (self.hi - self.lo) - 1)
            dh = (torch.eye(d, dtype=x.dtype, device=x.device) * cj[:, None])[:, None, :].expand(
                d, n, d
            )
            d2h = torch.zeros_like(dh) if second else None
        sin = self.act is torch.sin
        nl = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=False)):
            k = 1 + d + (d if second else 0)
            blocks = [h[None], dh] + ([d2h] if second else [])
            Z = torch.cat(blocks, 0).reshape(k * n, -1) @ w.T
            Z = Z.reshape(k, n, -1)
            z = Z[0] + b
            dz = Z[1 : 1 + d]
            if i == nl - 1:
                h, dh = z, dz
                d2h = Z[1 + d :] if second else None
                break
            if sin:
                a, a1 = torch.sin(z), torch.cos(z)
                a2 = -a
            else:
                a = torch.tanh(z)
                a1 = 1 - a * a
                a2 = -2 * a * a1
            h = a
            if second:
                d2h = a2 * dz * dz + a1 * Z[1 + d :]
            dh = a1 * dz
        s_out = self.out_scale
        u = h[:, 0] * s_out
        du = dh[..., 0].T * s_out
        d2u = d2h[..., 0].T * s_out if second else None
        return u, du, d2u
