"""Small networks for PINNs, initialised from an explicit ``torch.Generator`` (never the global RNG)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """x (scaled to [−1, 1]) or Fourier features → ``depth`` hidden layers of ``width`` → u."""

    def __init__(
        self,
        box: tuple,
        width: int,
        depth: int,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        fourier: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
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
            h = 2 * (x - self.lo) / (self.hi - self.lo) - 1
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=False)):
            h = h @ w.T + b
            if i < n - 1:
                h = self.act(h)
        return h[:, 0]
