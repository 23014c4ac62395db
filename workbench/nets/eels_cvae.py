"""A CPU-sized 3-D convolutional VAE over (y, x, energy) tiles and its multinomial likelihood.

Input tiles are (B, 1, P, P, C) with C a multiple of 16. The encoder follows the stride pattern of
Sultanov et al. (energy downsampled 16x, space 4x) with narrow widths and one small linear head;
the decoder mirrors it with transposed convolutions and returns per-channel *logits*. The
per-pixel spectral distribution is pi = softmax over energy; the reconstruction NLL is the
multinomial likelihood of the counts given their total (see :func:`multinomial_nll`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CVAE3D(nn.Module):
    def __init__(
        self,
        channels: int,
        patch: int = 16,
        latent: int = 16,
        widths: tuple[int, ...] = (8, 16, 32, 32),
        bottleneck: int = 8,
    ) -> None:
        super().__init__()
        if channels % 16 or patch % 4:
            raise ValueError("channels must be a multiple of 16 and patch a multiple of 4")
        w1, w2, w3, w4 = widths
        self.channels, self.patch, self.latent = channels, patch, latent
        self.widths, self.bottleneck = tuple(widths), bottleneck
        self.feat_shape = (bottleneck, patch // 4, patch // 4, channels // 16)
        nfeat = bottleneck * (patch // 4) ** 2 * (channels // 16)
        self.enc = nn.Sequential(
            nn.Conv3d(1, w1, (1, 1, 7), stride=(1, 1, 2), padding=(0, 0, 3)),
            nn.SiLU(),
            nn.Conv3d(w1, w2, (3, 3, 5), stride=(1, 1, 2), padding=(1, 1, 2)),
            nn.SiLU(),
            nn.Conv3d(w2, w3, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv3d(w3, w4, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv3d(w4, bottleneck, 1),
        )
        self.head = nn.Linear(nfeat, 2 * latent)
        self.dec_in = nn.Linear(latent, nfeat)
        self.dec = nn.Sequential(
            nn.SiLU(),
            nn.Conv3d(bottleneck, w4, 1),
            nn.SiLU(),
            nn.ConvTranspose3d(w4, w3, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose3d(w3, w2, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose3d(w2, w1, (3, 3, 6), stride=(1, 1, 2), padding=(1, 1, 2)),
            nn.SiLU(),
            nn.ConvTranspose3d(w1, 1, (1, 1, 8), stride=(1, 1, 2), padding=(0, 0, 3)),
        )

    def config(self) -> dict:
        return {
            "channels": self.channels,
            "patch": self.patch,
            "latent": self.latent,
            "widths": list(self.widths),
            "bottleneck": self.bottleneck,
        }

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x).flatten(1)
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dec_in(z).view(-1, *self.feat_shape)
        return self.dec(h)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
        eps: torch.Tensor | None = None,
    ):
        """``eps``: the reparametrisation noise, shape (N, latent); drawn from ``generator`` when
        omitted. Data-parallel training passes each process its slice of the global batch's
        noise, so that N processes see the noise one process would."""
        mu, logvar = self.encode(x)
        if sample:
            if eps is None:
                eps = torch.randn(mu.shape, generator=generator, device="cpu")
            eps = eps.to(mu.device, mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        return self.decode(z), mu, logvar


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every weight from an explicit generator (the global RNG is not used)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=5**0.5, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build(config: dict, seed: int = 0) -> CVAE3D:
    """Construct a model without touching the global RNG, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        model = CVAE3D(
            config["channels"],
            config.get("patch", 16),
            config.get("latent", 16),
            tuple(config.get("widths", (8, 16, 32, 32))),
            config.get("bottleneck", 8),
        )
    init_weights(model, torch.Generator().manual_seed(int(seed)))
    return model


def log_pi(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log softmax over energy (last axis) restricted to ``valid`` channels (bool, (C,))."""
    neg = torch.finfo(logits.dtype).min / 4
    return F.log_softmax(logits.masked_fill(~valid, neg), dim=-1)


def multinomial_nll(
    logits: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """-sum_k Y_k log pi_k over valid channels, summed per tile (shape (B,)).

    The multinomial coefficient is dropped (constant in the parameters): this is the exact
    likelihood of Poisson counts conditioned on each pixel's total, i.e. a count-weighted
    cross-entropy between observed and predicted spectra.
    """
    lp = log_pi(logits, valid).masked_fill(~valid, 0.0)
    return -(counts.masked_fill(~valid, 0.0) * lp).flatten(1).sum(1)


def saturated_nll(counts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """NLL of the saturated model pi = Y / N (the minimum), summed per tile."""
    c = counts.masked_fill(~valid, 0.0)
    n = c.sum(-1, keepdim=True).clamp_min(1e-12)
    p = (c / n).clamp_min(1e-30)
    return -(c * torch.log(p)).flatten(1).sum(1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
