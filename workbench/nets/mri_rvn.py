"""Recurrent Variational Network (Yiasemis et al., CVPR 2022), own implementation in torch.

Follows ``specs/mri.md`` §5 and keeps the parameter names of the reference implementation
(NKI-AI/direct: ``block_list.{t}.learning_rate``,
``block_list.{t}.regularizer.{conv_blocks,reset_gates,update_gates,out_gates}``, ``initializer.*``)
so that a compatible state dict loads with ``torch.load(weights_only=True)``.

Forward pass, with k₀ = y and for t = 0..T−1 (separate weights per block unless shared):

1. e_t = M ⊙ (k_t − y)
2. z_t = Σ_c conj(S_c) F⁻¹(k_t)_c (2 real channels)
3. (w_t, h_{t+1}) = ConvGRU_t(z_t, h_t)
4. k_{t+1} = k_t − α_t e_t + F(S · w_t)

The output image is RSS_c(F⁻¹ k_T). The hidden state h has shape (N, hidden, H, W, n_l); its
initial value comes from the recurrent state initialiser (RSI) fed with the k-space of the SENSE
image (the reference code's quirk, kept for compatibility), or is zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.physics.mri.coils import normalize_maps
from workbench.physics.mri.fft import fft2c, ifft2c


def c2r(x: torch.Tensor) -> torch.Tensor:
    """Complex (N, H, W) → real (N, 2, H, W)."""
    return torch.stack([x.real, x.imag], 1)


def r2c(x: torch.Tensor) -> torch.Tensor:
    """Real (N, 2, H, W) → complex (N, H, W)."""
    return torch.complex(x[:, 0], x[:, 1])


class Conv2dGRU(nn.Module):
    """Multi-layer convolutional GRU: conv (5×5, then 3×3 dilated 2, then 3×3) + 1×1 GRU gates per layer."""

    def __init__(
        self,
        in_channels: int = 2,
        hidden_channels: int = 64,
        out_channels: int = 2,
        num_layers: int = 4,
        state_relu: bool = False,
    ):
        super().__init__()
        # The reference keeps h_l′ (before the ReLU) as the state; ``state_relu=True`` keeps ReLU(h_l′),
        # the variant the first shipped checkpoints were trained with (recorded in their manifests).
        self.state_relu = state_relu
        self.num_layers = num_layers
        self.hidden_channels = hidden_channels
        self.conv_blocks = nn.ModuleList()
        for idx in range(num_layers + 1):
            cin = in_channels if idx == 0 else hidden_channels
            cout = hidden_channels if idx < num_layers else out_channels
            k = 5 if idx == 0 else 3
            dil = 2 if idx == 1 else 1
            pad = (k // 2) * dil
            self.conv_blocks.append(
                nn.Sequential(nn.ReplicationPad2d(pad), nn.Conv2d(cin, cout, k, dilation=dil))
            )
        self.reset_gates, self.update_gates, self.out_gates = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        for _ in range(num_layers):
            for gates in (self.reset_gates, self.update_gates, self.out_gates):
                gates.append(nn.Sequential(nn.Conv2d(2 * hidden_channels, hidden_channels, 1)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for gates, bias in (
            (self.reset_gates, -1.0),
            (self.update_gates, 0.0),
            (self.out_gates, 0.0),
        ):
            for g in gates:
                nn.init.orthogonal_(g[0].weight)
                nn.init.constant_(g[0].bias, bias)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None):
        n, _, h, w = x.shape
        if state is None:
            state = x.new_zeros(n, self.hidden_channels, h, w, self.num_layers)
        new = []
        for li in range(self.num_layers):
            x = F.relu(self.conv_blocks[li](x))
            hl = state[..., li]
            stacked = torch.cat([x, hl], 1)
            u = torch.sigmoid(self.update_gates[li](stacked))
            r = torch.sigmoid(self.reset_gates[li](stacked))
            cand = torch.tanh(self.out_gates[li](torch.cat([x, hl * r], 1)))
            h_new = hl * (1 - u) + cand * u
            x = F.relu(h_new)
            new.append(x if self.state_relu else h_new)
        out = self.conv_blocks[self.num_layers](x)
        return out, torch.stack(new, -1)


class RecurrentInit(nn.Module):
    """Recurrent state initialiser: dilated 3×3 conv stack, then one 1×1 conv + ReLU per GRU layer."""

    def __init__(
        self,
        in_channels=2,
        out_channels=64,
        channels=(32, 32, 64, 64),
        dilations=(1, 1, 2, 4),
        depth=4,
        multiscale_depth=1,
    ):
        super().__init__()
        self.multiscale_depth = multiscale_depth
        self.conv_blocks = nn.ModuleList()
        c = in_channels
        for ch, d in zip(channels, dilations, strict=True):
            self.conv_blocks.append(
                nn.Sequential(nn.ReplicationPad2d(d), nn.Conv2d(c, ch, 3, dilation=d))
            )
            c = ch
        tch = sum(channels[-multiscale_depth:])
        self.out_blocks = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(tch, out_channels, 1)) for _ in range(depth)]
        )

    def forward(self, x):
        feats = []
        for b in self.conv_blocks:
            x = F.relu(b(x))
            feats.append(x)
        if self.multiscale_depth > 1:
            x = torch.cat(feats[-self.multiscale_depth :], 1)
        return torch.stack([F.relu(b(x)) for b in self.out_blocks], -1)


class RecurrentVarNetBlock(nn.Module):
    def __init__(self, hidden: int, num_layers: int, state_relu: bool = False):
        super().__init__()
        self.learning_rate = nn.Parameter(torch.tensor([1.0]))
        self.regularizer = Conv2dGRU(2, hidden, 2, num_layers, state_relu)

    def forward(self, k, y, mask, maps, state):
        err = mask * (k - y)
        z = (maps.conj() * ifft2c(k)).sum(1)
        w, state = self.regularizer(c2r(z), state)
        reg = fft2c(maps * r2c(w).unsqueeze(1))
        return k - self.learning_rate * err + reg, state


class UnetModel2d(nn.Module):
    """Small U-Net (2 → 2 channels) used per coil for sensitivity refinement (SER)."""

    def __init__(self, in_channels=2, out_channels=2, num_filters=8, num_pool_layers=4):
        super().__init__()
        self.pools = num_pool_layers

        def block(ci, co):
            return nn.Sequential(
                nn.Conv2d(ci, co, 3, padding=1),
                nn.InstanceNorm2d(co),
                nn.LeakyReLU(0.2),
                nn.Conv2d(co, co, 3, padding=1),
                nn.InstanceNorm2d(co),
                nn.LeakyReLU(0.2),
            )

        ch = num_filters
        self.down = nn.ModuleList([block(in_channels, ch)])
        for _ in range(num_pool_layers - 1):
            self.down.append(block(ch, ch * 2))
            ch *= 2
        self.conv = block(ch, ch * 2)
        self.up_t, self.up = nn.ModuleList(), nn.ModuleList()
        for _ in range(num_pool_layers):
            self.up_t.append(nn.ConvTranspose2d(ch * 2, ch, 2, stride=2))
            self.up.append(block(ch * 2, ch))
            ch //= 2
        self.out = nn.Conv2d(ch * 2, out_channels, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        m = 2**self.pools
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        skips = []
        for b in self.down:
            x = b(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.conv(x)
        for t, b in zip(self.up_t, self.up, strict=True):
            x = b(torch.cat([t(x), skips.pop()], 1))
        return self.out(x)[..., :h, :w]


class RecurrentVarNet(nn.Module):
    """RecurrentVarNet. ``forward(y, mask, maps) -> k-space (N, C, H, W)``; ``image(k)`` = RSS."""

    def __init__(
        self,
        num_steps: int = 15,
        recurrent_hidden_channels: int = 64,
        recurrent_num_layers: int = 4,
        no_parameter_sharing: bool = True,
        learned_initializer: bool = False,
        initializer_initialization: str = "sense",
        initializer_channels: tuple = (32, 32, 64, 64),
        initializer_dilations: tuple = (1, 1, 2, 4),
        initializer_multiscale: int = 1,
        ser: bool = False,
        ser_filters: int = 8,
        ser_pools: int = 4,
        gru_state_relu: bool = False,
    ):
        super().__init__()
        self.num_steps = num_steps
        self.no_parameter_sharing = no_parameter_sharing
        self.initializer_initialization = initializer_initialization
        n_blocks = num_steps if no_parameter_sharing else 1
        self.block_list = nn.ModuleList(
            [
                RecurrentVarNetBlock(
                    recurrent_hidden_channels, recurrent_num_layers, gru_state_relu
                )
                for _ in range(n_blocks)
            ]
        )
        self.initializer = (
            RecurrentInit(
                2,
                recurrent_hidden_channels,
                tuple(initializer_channels),
                tuple(initializer_dilations),
                recurrent_num_layers,
                initializer_multiscale,
            )
            if learned_initializer
            else None
        )
        self.sens_net = UnetModel2d(2, 2, ser_filters, ser_pools) if ser else None

    def refine_maps(self, maps: torch.Tensor) -> torch.Tensor:
        if self.sens_net is None:
            return maps
        n, c, h, w = maps.shape
        x = c2r(maps.reshape(n * c, h, w))
        return normalize_maps(r2c(self.sens_net(x)).reshape(n, c, h, w))

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor, callback=None
    ) -> torch.Tensor:
        maps = self.refine_maps(maps)
        state = None
        if self.initializer is not None:
            if self.initializer_initialization == "sense":
                img = (maps.conj() * ifft2c(y)).sum(1)
            else:  # zero_filled: RSS-free complex sum of coil images
                img = ifft2c(y).sum(1)
            # quirk kept from the reference: the initialiser sees the k-space of that image
            state = self.initializer(c2r(fft2c(img)))
        k = y.clone()
        for t in range(self.num_steps):
            blk = self.block_list[t if self.no_parameter_sharing else 0]
            k, state = blk(k, y, mask, maps, state)
            if callback is not None:
                callback(t + 1, k)
        return k

    @staticmethod
    def image(k: torch.Tensor) -> torch.Tensor:
        x = ifft2c(k)
        return torch.sqrt((x.real**2 + x.imag**2).sum(1) + 1e-12)


def ssim_loss(
    pred: torch.Tensor, target: torch.Tensor, win: int = 7, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """1 − SSIM (7×7 uniform window, sample covariance), data range = per-image target max.

    ``pred``, ``target``: (N, H, W) real.
    """
    x, y = pred.unsqueeze(1), target.unsqueeze(1)
    dr = target.flatten(1).amax(1).view(-1, 1, 1, 1)
    c1, c2 = (k1 * dr) ** 2, (k2 * dr) ** 2
    w = torch.ones(1, 1, win, win, dtype=x.dtype, device=x.device) / win**2
    np_ = win * win
    cov = np_ / (np_ - 1)
    ux, uy = F.conv2d(x, w), F.conv2d(y, w)
    uxx, uyy, uxy = F.conv2d(x * x, w), F.conv2d(y * y, w), F.conv2d(x * y, w)
    vx, vy, vxy = cov * (uxx - ux * ux), cov * (uyy - uy * uy), cov * (uxy - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return 1 - s.mean()


def rvn_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + SSIM loss, weights 1:1 (paper), on RSS images (N, H, W)."""
    return F.l1_loss(pred, target) + ssim_loss(pred, target)
