"""Small networks for PINNs, initialised from an explicit ``torch.Generator`` (never the global RNG)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """x (scaled to [−1, 1]) or Fourier features → ``depth`` hidden layers of ``width`` → u.

    Input scaling maps the box affinely onto [−1, 1]^d; output scaling multiplies the last
    layer by ``out_scale`` (the solution's expected size), so that Xavier-initialised weights
    see O(1) inputs and produce O(1) targets whatever the problem's units.
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
