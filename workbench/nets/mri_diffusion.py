"""A small ε-prediction U-Net and the VP (DDPM) schedule: the diffusion prior of the DDS/DPS solvers.

Prior (``specs/mri.md`` §6.1): complex images ``x ∈ ℂ^{H×W}`` with ``max|x| ≈ 1`` are treated as
2 real channels (real, imaginary). The forward (noising) process of the variance-preserving SDE,
discretised as DDPM (Ho et al., 2020), is

.. math::

    x_t = \\sqrt{\\bar α_t}\\, x_0 + \\sqrt{1 − \\bar α_t}\\, ε, \\qquad ε ∼ N(0, I), \\qquad
    \\bar α_t = \\prod_{i ≤ t} (1 − β_i),

with β linear from 1e-4 to 0.02 over 1000 steps. The network ε_θ(x_t, t) is trained with the
ε-MSE ``E‖ε_θ(x_t, t) − ε‖²``; Tweedie's formula then gives the posterior mean of the clean image,
``x̂₀ = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t``.

Architecture: the ADM/DDPM U-Net (Dhariwal & Nichol, 2021) cut down to a CPU-trainable size —
residual blocks with GroupNorm and SiLU, a sinusoidal time embedding passed through an MLP and
added to every block, strided-convolution downsampling, nearest-neighbour upsampling, skip
concatenations and no attention. It is fully convolutional, so a prior trained on 64² crops
applies at 128² or 320²; inputs whose sides are not multiples of ``2**levels`` are padded.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

N_TRAIN_STEPS = 1000
BETA_MIN, BETA_MAX = 1e-4, 0.02


def alpha_bar(n_steps: int = N_TRAIN_STEPS, dtype=torch.float64) -> torch.Tensor:
    """ᾱ_t for t = 0..n_steps−1 of the linear-β VP schedule (float64 by default)."""
    betas = torch.linspace(BETA_MIN, BETA_MAX, n_steps, dtype=dtype)
    return torch.cumprod(1.0 - betas, 0)


def c2r(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(N, H, W)`` → real ``(N, 2, H, W)`` (real, imaginary)."""
    return torch.stack([x.real, x.imag], 1)


def r2c(x: torch.Tensor) -> torch.Tensor:
    """Real ``(N, 2, H, W)`` → complex ``(N, H, W)``."""
    return torch.complex(x[:, 0], x[:, 1])


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) timesteps, shape ``(N, dim)`` (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], 1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """GN → SiLU → conv → (+ time embedding) → GN → SiLU → conv, with a 1×1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # zero-initialised last conv: each block starts as the identity (ADM's zero_module)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class EpsUNet(nn.Module):
    """ε-prediction U-Net on 2-channel (real, imaginary) images.

    Parameters
    ----------
    channels : int
        Width of the first level; level ``l`` has ``channels * mult[l]``.
    mult : tuple of int
        Width multipliers per level; there are ``len(mult) − 1`` downsamplings.
    blocks : int
        Residual blocks per level on the way down (one more on the way up, as in DDPM).
    in_channels : int
        2 for complex images.

    Examples
    --------
    >>> net = EpsUNet(channels=8, mult=(1, 2), blocks=1)
    >>> net(torch.zeros(1, 2, 16, 16), torch.tensor([10])).shape
    torch.Size([1, 2, 16, 16])
    """

    def __init__(
        self,
        channels: int = 32,
        mult: tuple[int, ...] = (1, 2, 2, 2),
        blocks: int = 1,
        in_channels: int = 2,
    ):
        super().__init__()
        self.config = dict(
            channels=channels, mult=tuple(mult), blocks=blocks, in_channels=in_channels
        )
        self.levels = len(mult) - 1
        t_dim = 4 * channels
        self.t_dim0 = channels
        self.time_mlp = nn.Sequential(
            nn.Linear(channels, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim)
        )
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in mult]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [channels]
        c = channels
        for lvl, w in enumerate(widths):
            blk = nn.ModuleList()
            for _ in range(blocks):
                blk.append(ResBlock(c, w, t_dim))
                c = w
                skips.append(c)
            self.down.append(blk)
            if lvl < self.levels:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, t_dim), ResBlock(c, c, t_dim)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl, w in reversed(list(enumerate(widths))):
            blk = nn.ModuleList()
            for _ in range(blocks + 1):
                blk.append(ResBlock(c + skips.pop(), w, t_dim))
                c = w
            self.up.append(blk)
            if lvl > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ for ``x`` of shape ``(N, 2, H, W)`` and timesteps ``t`` of shape ``(N,)`` (or scalar).

        Sides that are not multiples of ``2**levels`` are zero-padded and the output cropped back.
        """
        n, _, h, w = x.shape
        f = 2**self.levels
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(n)
        temb = self.time_mlp(timestep_embedding(t, self.t_dim0))
        hs = [self.inp(x)]
        z = hs[-1]
        for lvl, blk in enumerate(self.down):
            for b in blk:
                z = b(z, temb)
                hs.append(z)
            if lvl < self.levels:
                z = self.downsample[lvl](z)
                hs.append(z)
        for b in self.mid:
            z = b(z, temb)
        for i, blk in enumerate(self.up):
            for b in blk:
                z = b(torch.cat([z, hs.pop()], 1), temb)
            if i < self.levels:
                z = self.upsample[i](F.interpolate(z, scale_factor=2.0, mode="nearest"))
        out = self.out(F.silu(self.out_norm(z)))
        if ph or pw:
            out = out[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        return out


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
